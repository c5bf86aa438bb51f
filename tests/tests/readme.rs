//! The README is part of the product: the `crm configure` text it shows is the one the cluster
//! test runs (docs/crm-configure.txt), and CI runs exactly the README's test command.

use cloudha_tests::workspace_root;

fn read(path: &str) -> String {
    let p = workspace_root().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn readme_shows_the_configuration_the_cluster_test_runs() {
    let readme = read("README.md");
    let block = read("docs/crm-configure.txt");
    assert!(!block.trim().is_empty(), "docs/crm-configure.txt is empty");
    let fenced = format!("```\n{block}```\n");
    assert!(
        readme.contains(&fenced),
        "README.md must show docs/crm-configure.txt verbatim in a ``` block; copy it again"
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
