//! GET the URL in argv[1] once and print the status.
fn main() {
    let url = std::env::args().nth(1).expect("usage: reqwest-get URL");
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("client");
    let resp = client.get(&url).send().expect("request");
    println!("{}", resp.status().as_u16());
}
