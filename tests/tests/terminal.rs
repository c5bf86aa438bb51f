//! A person at a terminal gets the answer in words; Pacemaker (no terminal) gets codes and exit
//! reasons only. The terminal is a real pseudo-terminal made by util-linux's `script`.

use cloudha_tests::{agent_bin, require_program, run_agent, Netns};

/// Run `command` (a shell line) on a pseudo-terminal: (exit code, what the terminal showed).
fn on_terminal(ns: &Netns, command: &str) -> (i32, String) {
    require_program("/usr/bin/script");
    let out = ns
        .command("/usr/bin/script")
        .args(["--quiet", "--return", "--command", command, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("script");
    let shown = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    (out.status.code().unwrap_or(-1), shown)
}

#[test]
fn a_person_reads_the_answer_in_words() {
    let ns = Netns::new("tty");
    let bin = agent_bin("anchorip");
    let rsctmp = tempfile::tempdir().expect("tempdir");
    let cmd = |action: &str| {
        format!(
            "HA_RSCTMP={} {} --ip 10.17.1.18 --nic lo {action}",
            rsctmp.path().display(),
            bin.display()
        )
    };
    let (code, shown) = on_terminal(&ns, &cmd("monitor"));
    assert_eq!(code, 7, "{shown}");
    assert!(
        shown.contains("7 not running: 10.17.1.18/32 is not on lo"),
        "{shown}"
    );
    let (code, shown) = on_terminal(&ns, &cmd("start"));
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("0 ok: "), "{shown}");
    let (code, shown) = on_terminal(&ns, &cmd("stop"));
    assert_eq!(code, 0, "{shown}");

    // An error: the words, and the exit reason line as Pacemaker would store it.
    let (code, shown) = on_terminal(&ns, &format!("{} --ip 10.1.2 validate-all", bin.display()));
    assert_eq!(code, 6, "{shown}");
    assert!(
        shown.contains("6 not configured: parameter 'ip'"),
        "{shown}"
    );
    assert!(shown.contains("ocf-exit-reason:parameter 'ip'"), "{shown}");
}

#[test]
fn pacemaker_gets_no_words_on_stdout() {
    let ns = Netns::new("notty");
    let rsctmp = tempfile::tempdir().expect("tempdir");
    let run = run_agent(
        &agent_bin("anchorip"),
        "monitor",
        &[
            ("OCF_RESKEY_ip", "10.17.1.18"),
            ("HA_RSCTMP", &rsctmp.path().display().to_string()),
        ],
        Some(&ns),
    );
    assert_eq!(run.code, 7, "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    assert_eq!(run.exit_reason_count(), 0, "{run:?}");
}
