//! GET the URL in argv[1] once and print the status.
fn main() {
    let url = std::env::args().nth(1).expect("usage: ureq-get URL");
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(5)))
        .build();
    let agent: ureq::Agent = config.into();
    let resp = agent.get(&url).call().expect("request");
    println!("{}", resp.status().as_u16());
}
