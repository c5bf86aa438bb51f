//! What the agent is asked: from pacemaker-fenced, `key=value` lines on stdin (no argv); from a
//! person, options (`-o off -n lb2 --api-token-file=/etc/cloudha/do-token`). Both become the
//! same list of parameters. A secret is never taken from argv, which every user can read.

use crate::SPEC;
use std::io::BufRead;

/// The parameters as given, in order (a later one wins), and any complaint about them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub pairs: Vec<(String, String)>,
    /// Keys the agent does not know (logged, then ignored, as the fencer's contract says).
    pub unknown: Vec<String>,
    pub help: bool,
}

/// The most of stdin that is read.
const MAX_STDIN: u64 = 64 * 1024;

/// Keys pacemaker-fenced sends that this agent has no use for.
const IGNORED: &[&str] = &["nodename", "nodeid"];

/// One value as fencing.py reads it: surrounding blanks, then one pair of quotes, removed.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

impl Input {
    fn push(&mut self, key: &str, value: &str) {
        let key = key.trim();
        if SPEC.param(key).is_some() {
            self.pairs
                .push((key.to_string(), unquote(value).to_string()));
        } else if !IGNORED.contains(&key) && !key.starts_with("pcmk_") {
            self.unknown.push(key.to_string());
        }
    }

    /// `key=value` lines; `#` lines and lines without `=` are skipped.
    pub fn from_stdin(input: impl BufRead) -> Input {
        let mut out = Input::default();
        for line in input.take(MAX_STDIN).lines() {
            let Ok(line) = line else { break };
            let line = line.trim_start();
            if line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                out.push(k, v);
            }
        }
        out
    }

    /// Options: `-o ACTION`, `-n PLUG`, `--NAME=VALUE` or `--NAME VALUE` for any parameter
    /// (dashes or underscores), `--skip-race-check` alone meaning true, `-h`/`--help`.
    pub fn from_args(args: &[String]) -> Result<Input, String> {
        let mut out = Input::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.as_str() {
                "-h" | "--help" => {
                    out.help = true;
                    continue;
                }
                "-o" => ("action".to_string(), None),
                "-n" => ("plug".to_string(), None),
                a if a.starts_with("--") => match a[2..].split_once('=') {
                    Some((n, v)) => (n.replace('-', "_"), Some(v.to_string())),
                    None => (a[2..].replace('-', "_"), None),
                },
                a => return Err(format!("unexpected argument '{a}' (see --help)")),
            };
            let Some(p) = SPEC.param(&name) else {
                return Err(format!("unknown option '{arg}' (see --help)"));
            };
            if p.secret {
                return Err(format!(
                    "'{}' is a secret and is never taken from the command line, which every user can read: give api_token_file, or '{}=...' on stdin",
                    p.name, p.name
                ));
            }
            let value = match inline {
                Some(v) => v,
                None if p.kind == cloudha_common::ParamKind::Boolean => "true".to_string(),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("option '{arg}' needs a value"))?,
            };
            out.push(&name, &value);
        }
        Ok(out)
    }

    /// The action asked for (the last `action=`), or the default.
    pub fn action(&self) -> &str {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == "action")
            .map(|(_, v)| v.as_str())
            .unwrap_or("reboot")
    }

    /// As `OCF_RESKEY_*` variables, the last value of each key winning: what common's
    /// parameter resolution reads.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut last: std::collections::BTreeMap<&str, &str> = Default::default();
        for (k, v) in &self.pairs {
            last.insert(k, v);
        }
        last.into_iter()
            .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_as_the_fencer_sends_it() {
        let text = "# comment\naction=off\nnodename=node2\nplug=node2\nport=\"lb2\"\napi_token_file=/etc/t\nbogus=1\npcmk_host_map=a:b\naction=reboot\nno equals sign\n";
        let i = Input::from_stdin(text.as_bytes());
        assert_eq!(i.action(), "reboot");
        assert_eq!(i.unknown, vec!["bogus".to_string()]);
        let vars = i.vars();
        assert!(vars.contains(&("OCF_RESKEY_port".into(), "lb2".into())));
        assert!(vars.contains(&("OCF_RESKEY_action".into(), "reboot".into())));
        assert!(!vars.iter().any(|(k, _)| k.contains("nodename")));
    }

    #[test]
    fn options_for_people_never_a_secret() {
        let args: Vec<String> = [
            "-o",
            "status",
            "-n",
            "lb1",
            "--api-url=http://127.0.0.1:1",
            "--skip-race-check",
            "--power-timeout",
            "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let i = Input::from_args(&args).unwrap();
        assert_eq!(i.action(), "status");
        let vars = i.vars();
        assert!(vars.contains(&("OCF_RESKEY_plug".into(), "lb1".into())));
        assert!(vars.contains(&("OCF_RESKEY_skip_race_check".into(), "true".into())));
        assert!(vars.contains(&("OCF_RESKEY_power_timeout".into(), "5".into())));
        let e = Input::from_args(&["--api-token=dop_v1_secret".to_string()]).unwrap_err();
        assert!(e.contains("never taken from the command line"), "{e}");
        assert!(!e.contains("dop_v1_secret"));
        assert!(Input::from_args(&["--nope".to_string()]).is_err());
        assert!(Input::from_args(&["-o".to_string()]).is_err());
        assert!(Input::from_args(&["-h".to_string()]).unwrap().help);
    }
}
