//! The README is part of the product: the `crm configure` text it shows for each cloud is the one
//! the cluster test runs (docs/crm-configure.txt for DigitalOcean, docs/crm-configure-hetzner.txt,
//! docs/crm-configure-exoscale.txt, docs/crm-configure-vultr.txt), and CI runs exactly the README's test command.

use cloudha_tests::workspace_root;

fn read(path: &str) -> String {
    let p = workspace_root().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn readme_shows_the_configuration_the_cluster_test_runs() {
    let readme = read("README.md");
    for (file, provider) in [
        ("docs/crm-configure.txt", None),
        ("docs/crm-configure-hetzner.txt", Some("provider=hetzner")),
        ("docs/crm-configure-exoscale.txt", Some("provider=exoscale")),
        ("docs/crm-configure-vultr.txt", Some("provider=vultr")),
    ] {
        let block = read(file);
        assert!(!block.trim().is_empty(), "{file} is empty");
        let fenced = format!("```\n{block}```\n");
        assert!(
            readme.contains(&fenced),
            "README.md must show {file} verbatim in a ``` block; copy it again"
        );
        if let Some(p) = provider {
            // The clouds whose floating IP must sit on the host: an anchorip clone with it on
            // lo as a /32, ordered before HAProxy.
            for needed in [
                p,
                "nic=lo cidr_netmask=32",
                "clone vip-lo-clone vip-lo",
                "order lb-after-vip-lo Mandatory: vip-lo-clone lb-clone",
            ] {
                assert!(block.contains(needed), "{file} lacks {needed:?}");
            }
        }
    }
}

#[test]
fn readme_shows_the_fencing_configuration_the_fencing_test_runs() {
    let readme = read("README.md");
    let block = read("docs/crm-configure-fencing.txt");
    assert!(block.contains("stonith-enabled=true"), "{block}");
    let fenced = format!("```\n{block}```\n");
    let shown = readme.find(&fenced).unwrap_or_else(|| {
        panic!("README.md must show docs/crm-configure-fencing.txt verbatim in a ``` block")
    });
    let fencing = readme.find("## Fencing").expect("a Fencing section");
    let main = readme
        .find(&format!("```\n{}```\n", read("docs/crm-configure.txt")))
        .expect("the DigitalOcean block");
    assert!(
        main < fencing && fencing < shown,
        "the Fencing section follows the DigitalOcean block"
    );
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = read("README.md");
    let ci = read(".ci/run");
    let command = "bash scripts/test.sh";
    assert!(
        readme.lines().any(|l| l.trim_start().starts_with(command)),
        "README.md does not give `{command}` as the test command"
    );
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run does not call `{command}`"
    );
}

#[test]
fn readme_shows_the_linode_configuration_the_bgpip_cluster_test_runs() {
    let readme = read("README.md");
    let block = read("docs/crm-configure-linode.txt");
    assert!(
        !block.trim().is_empty(),
        "docs/crm-configure-linode.txt is empty"
    );
    let fenced = format!("```\n{block}```\n");
    assert!(
        readme.contains(&fenced),
        "README.md must show docs/crm-configure-linode.txt verbatim in a ``` block; copy it again"
    );
}
