//! Who holds a TCP port that HAProxy could not bind: the listening socket in `/proc/net/tcp*`
//! (this network namespace's), then the process that has it open. For the exit reason only:
//! every failure here just means the reason says less.

/// The port of a bind ALERT: `... cannot bind socket (Address already in use) for [127.0.0.1:80]`.
pub fn port_in_alert(alert: &str) -> Option<u16> {
    if !alert.contains("Address already in use") {
        return None;
    }
    let addr = alert.rsplit_once('[')?.1.split(']').next()?;
    addr.rsplit_once(':')?.1.parse().ok()
}

/// Socket inodes listening on TCP `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let listening = *state == "0A";
            let same_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if let (true, true, Ok(inode)) = (listening, same_port, inode.parse()) {
                inodes.push(inode);
            }
        }
    }
    inodes
}

/// "python3 (pid 1234)" for the first process holding one of `inodes`.
fn process_with_socket(inodes: &[u64]) -> Option<String> {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                return Some(format!("{} (pid {pid})", comm.trim()));
            }
        }
    }
    None
}

/// "; port 80 is held by nginx (pid 812)" when the alert is a port in use and its holder is
/// found, "" otherwise.
pub fn describe(alert: &str) -> String {
    let Some(port) = port_in_alert(alert) else {
        return String::new();
    };
    let inodes = listening_inodes(port);
    match process_with_socket(&inodes) {
        Some(p) => format!("; port {port} is held by {p}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn port_of_a_bind_alert() {
        assert_eq!(
            port_in_alert("Binding [/etc/h.cfg:9] for frontend fe: cannot bind socket (Address already in use) for [127.0.0.1:18080]"),
            Some(18080)
        );
        assert_eq!(
            port_in_alert("cannot bind socket (Address already in use) for [:::443]"),
            Some(443)
        );
        assert_eq!(port_in_alert("unknown keyword 'x'"), None);
    }

    #[test]
    fn finds_this_test_holding_a_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let alert = format!("cannot bind socket (Address already in use) for [127.0.0.1:{port}]");
        let said = describe(&alert);
        assert!(
            said.contains(&format!("pid {}", std::process::id())),
            "{said}"
        );
    }

    proptest! {
        #[test]
        fn any_alert_without_panic(text in "(?s).{0,200}") {
            let _ = port_in_alert(&text);
        }

        #[test]
        fn the_port_of_any_bind_alert(
            file in "/[a-z/]{1,20}\\.cfg",
            line in 1u32..10_000,
            proxy in "[A-Za-z0-9_.:-]{1,20}",
            address in prop_oneof![
                Just("127.0.0.1".to_string()),
                Just("0.0.0.0".to_string()),
                Just("::".to_string()),
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                Just("::1".to_string()),
            ],
            port in 1u16..=65535,
        ) {
            let alert = format!(
                "Binding [{file}:{line}] for frontend {proxy}: cannot bind socket (Address already in use) for [{address}:{port}]"
            );
            prop_assert_eq!(port_in_alert(&alert), Some(port));
        }
    }
}
