//! The API token: from `api_token` (legacy `do_token`, maybe through cibsecret) or from
//! `api_token_file`, a root-only file. Whatever its source, the logger masks it at once. Every
//! program that talks to a cloud (floatip, fence_cloudha) reads it here, through the two
//! parameters it declares ([`TokenParams`]).

use cloudha_common::{Context, OcfCode, OcfError, OcfResult, Param, Secret};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The two parameters that carry a program's API token, as it declares them.
pub struct TokenParams {
    /// `api_token` (legacy `do_token`).
    pub token: &'static Param<Secret>,
    /// `api_token_file`.
    pub file: &'static Param<String>,
}

/// The most of a token file that is read: the token's line must end within it.
const MAX_READ: usize = 4096;

/// What no API accepts in a token (no HTTP header carries it).
const CONTROL: &str = "holds a control character: no API accepts it";
/// A token file with no token in it.
const EMPTY: &str = "is empty on this node";

/// The whole lines within the first `MAX_READ` bytes of `file`, and whether more followed.
/// Never more is read, whatever the file holds.
fn head(file: impl Read) -> std::io::Result<(String, bool)> {
    let mut buf = Vec::with_capacity(MAX_READ + 1);
    file.take(MAX_READ as u64 + 1).read_to_end(&mut buf)?;
    let cut = buf.len() > MAX_READ;
    if cut {
        // The line that crosses the bound is not a token.
        let end = buf[..MAX_READ]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        buf.truncate(end);
    }
    let text = String::from_utf8(buf).map_err(|_| {
        std::io::Error::new(ErrorKind::InvalidData, "stream did not contain valid UTF-8")
    })?;
    Ok((text, cut))
}

/// Refuse a file that anyone but its owner (root or us) can write; warn when others can read.
/// Permissions are a property of this node: 4 (OCF_ERR_PERM), never 6. A missing file is 5.
pub fn read_token_file(path: &Path, ctx: &Context, tp: &TokenParams) -> OcfResult<Secret> {
    let shown = path.display();
    let fault = |code, detail: String| ctx.params.fault(code, tp.file, detail);
    let unreadable = |e: std::io::Error| match e.kind() {
        ErrorKind::PermissionDenied => fault(OcfCode::ErrPerm, format!("cannot read {shown}: {e}")),
        _ => fault(OcfCode::ErrInstalled, format!("cannot read {shown}: {e}")),
    };
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => fault(
            OcfCode::ErrInstalled,
            format!("{shown} does not exist on this node"),
        ),
        _ => unreadable(e),
    })?;
    if !meta.is_file() {
        return Err(fault(
            OcfCode::ErrInstalled,
            format!("{shown} is not a regular file"),
        ));
    }
    let euid = nix::unistd::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(fault(OcfCode::ErrPerm, format!(
            "{shown} belongs to uid {}, not root: its owner could replace the token (chown root {shown})",
            meta.uid()
        )));
    }
    if mode & 0o002 != 0 || (mode & 0o020 != 0 && meta.gid() != 0) {
        return Err(fault(
            OcfCode::ErrPerm,
            format!(
                "{shown} is writable by others (mode {mode:04o}): refusing it (chmod 600 {shown})"
            ),
        ));
    }
    if mode & 0o004 != 0 || (mode & 0o040 != 0 && meta.gid() != 0) {
        ctx.log.warn(format_args!(
            "parameter '{}': {shown} is readable by others (mode {mode:04o}): chmod 600 {shown}",
            ctx.params.name_of(tp.file)
        ));
    }
    let (text, cut) = std::fs::File::open(path)
        .and_then(head)
        .map_err(unreadable)?;
    let token = token_from_text(&text).map_err(|why| {
        let why = if cut && why == EMPTY {
            format!("holds no token within its first {MAX_READ} bytes on this node")
        } else {
            why.to_string()
        };
        fault(OcfCode::ErrInstalled, format!("{shown} {why}"))
    })?;
    Ok(Secret::new(token))
}

/// Mask the token given as a parameter before anything is logged, whatever the action.
pub fn mask_parameter(ctx: &Context, tp: &TokenParams) {
    if let Ok(Some(t)) = ctx.params.read(tp.token) {
        ctx.log.mask(&t);
    }
}

/// The key of the YAML file that DigitalOcean keepalived setups keep (`/etc/digitalocean.yaml`).
const YAML_KEY: &str = "apiToken";

/// The token in a token file's text, or why there is none (words that never quote the file).
///
/// Two formats. Plain: the first line that is not blank and not a `#` comment is the token, a
/// single word. YAML, as in `/etc/digitalocean.yaml`: otherwise the value of the top-level key
/// `apiToken` (`apiToken: TOKEN`, `apiToken: "TOKEN"` or `apiToken: 'TOKEN'`, comments and
/// other keys allowed). CRLF line ends and a byte-order mark are fine.
fn token_from_text(text: &str) -> Result<&str, &'static str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let significant = |l: &&str| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    };
    let Some(first) = text.lines().find(significant) else {
        return Err(EMPTY);
    };
    let first = first.trim();
    if first != "---" && !first.contains(':') && !first.contains(char::is_whitespace) {
        return Ok(first);
    }
    // YAML: a top-level key starts its line (an indented one belongs to another mapping).
    let Some(value) = text.lines().find_map(|l| {
        l.strip_prefix(YAML_KEY)?
            .trim_start_matches([' ', '\t'])
            .strip_prefix(':')
    }) else {
        return Err(
            "holds neither a token on its first line nor a top-level 'apiToken:' key on this node",
        );
    };
    let value = value.trim();
    let token = match value.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let Some((inside, after)) = value[1..].split_once(q) else {
                return Err("has an 'apiToken:' value whose quote is not closed");
            };
            let after = after.trim_start();
            if !after.is_empty() && !after.starts_with('#') {
                return Err("has more text after the quoted 'apiToken:' value");
            }
            inside
        }
        // A comment starts with '#' after whitespace (or as the whole value).
        _ if value.starts_with('#') => "",
        _ => value
            .split_once(" #")
            .or_else(|| value.split_once("\t#"))
            .map_or(value, |(v, _)| v.trim_end()),
    };
    if token.trim().is_empty() {
        return Err("has an empty 'apiToken:' value on this node");
    }
    if token.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err("has an 'apiToken:' value with spaces or control characters in it");
    }
    Ok(token)
}

/// The token for API calls, masked in every log line from now on.
/// 6 when neither parameter is set, or when `api_token` holds a control character (wrong
/// everywhere, and no request could carry it); 5 when the file's token does (that node's copy),
/// or when `api_token` arrived as the cibsecret placeholder without a file to fall back on.
pub fn token(ctx: &Context, tp: &TokenParams) -> OcfResult<Secret> {
    let p = &ctx.params;
    let control = |t: &Secret| t.expose().chars().any(char::is_control);
    if p.has(tp.token) {
        let t = p.need(tp.token)?;
        ctx.log.mask(&t);
        if control(&t) {
            return Err(p.invalid(tp.token, CONTROL));
        }
        return Ok(t);
    }
    if let Some(file) = p.read(tp.file)? {
        let t = read_token_file(Path::new(&file), ctx, tp)?;
        ctx.log.mask(&t);
        if control(&t) {
            // The file is this node's copy: 5 here, the resource may still run elsewhere.
            let detail = format!("{file}: the token {CONTROL}");
            return Err(p.fault(OcfCode::ErrInstalled, tp.file, detail));
        }
        return Ok(t);
    }
    // Given, yet not usable: the cibsecret placeholder (5, naming `cibsecret sync`).
    p.read(tp.token)?;
    Err(OcfError::configured(
        "no API token: set parameter 'api_token' (legacy 'do_token') or 'api_token_file'",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudha_common::{ActionSpec, AgentSpec};

    static API_TOKEN: Param<Secret> = Param::new("api_token").aliases(&["do_token"]);
    static API_TOKEN_FILE: Param<String> = Param::new("api_token_file");
    static TP: TokenParams = TokenParams {
        token: &API_TOKEN,
        file: &API_TOKEN_FILE,
    };
    static SPEC: AgentSpec = AgentSpec {
        name: "token-test",
        version: "0",
        shortdesc: "",
        longdesc: "",
        params: &[&API_TOKEN.spec, &API_TOKEN_FILE.spec],
        actions: &[ActionSpec::new("start", 20)],
    };
    use cloudha_common::{Action, Logger, OcfCode, OcfEnv};
    use std::os::unix::fs::PermissionsExt;

    fn token_of(c: &Context) -> OcfResult<Secret> {
        token(c, &TP)
    }

    fn ctx(vars: &[(&str, &str)]) -> Context {
        let env = OcfEnv::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Context::new(&SPEC, Action::Start, env, Logger::stderr("t"))
    }

    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p.display().to_string()
    }

    #[test]
    fn parameter_then_file_then_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let good = file(dir.path(), "t", "\n  dop_v1_file  \n", 0o600);
        let c = ctx(&[
            ("OCF_RESKEY_do_token", "dop_v1_param"),
            ("OCF_RESKEY_api_token_file", &good),
        ]);
        assert_eq!(token(&c, &TP).unwrap().expose(), "dop_v1_param");
        let c = ctx(&[("OCF_RESKEY_api_token_file", &good)]);
        assert_eq!(token(&c, &TP).unwrap().expose(), "dop_v1_file");
        assert_eq!(c.log.scrub("x dop_v1_file y"), "x *** y");
        let e = token_of(&ctx(&[])).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        let e = token_of(&ctx(&[("OCF_RESKEY_api_token", "lrm://")])).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrInstalled);
        // A placeholder with a file to fall back on is fine.
        let c = ctx(&[
            ("OCF_RESKEY_api_token", "lrm://"),
            ("OCF_RESKEY_api_token_file", &good),
        ]);
        assert_eq!(token(&c, &TP).unwrap().expose(), "dop_v1_file");
    }

    #[test]
    fn file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let code = |path: &str| {
            token_of(&ctx(&[("OCF_RESKEY_api_token_file", path)]))
                .map(|_| OcfCode::Success)
                .unwrap_or_else(|e| e.code)
        };
        assert_eq!(code(&file(dir.path(), "ok", "x", 0o600)), OcfCode::Success);
        // Readable by others: accepted, with a warning.
        assert_eq!(code(&file(dir.path(), "r", "x", 0o644)), OcfCode::Success);
        assert_eq!(code(&file(dir.path(), "w", "x", 0o602)), OcfCode::ErrPerm);
        assert_eq!(
            code(&file(dir.path(), "e", " \n", 0o600)),
            OcfCode::ErrInstalled
        );
        let missing = dir.path().join("missing").display().to_string();
        assert_eq!(code(&missing), OcfCode::ErrInstalled);
        assert_eq!(
            code(&dir.path().display().to_string()),
            OcfCode::ErrInstalled
        );
    }

    #[test]
    fn only_the_head_of_a_file_is_read() {
        // An endless file: the read ends all the same, with no whole line.
        assert_eq!(head(std::io::repeat(b'a')).unwrap(), (String::new(), true));
        let long = format!("\n  dop_v1_x  \nsecond\n{}", "y".repeat(2 * MAX_READ));
        let (text, cut) = head(long.as_bytes()).unwrap();
        assert!(cut);
        assert_eq!(text, "\n  dop_v1_x  \nsecond\n");
        assert_eq!(head(&b"dop_v1_x"[..]).unwrap(), ("dop_v1_x".into(), false));
        let dir = tempfile::tempdir().unwrap();
        let huge = file(dir.path(), "h", &"a".repeat(MAX_READ + 1), 0o600);
        let e = token_of(&ctx(&[("OCF_RESKEY_api_token_file", &huge)])).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrInstalled);
        assert!(
            e.reason.contains("no token within its first 4096 bytes"),
            "{}",
            e.reason
        );
        assert!(!e.reason.contains("aaaa"), "{}", e.reason);
        let exact = file(dir.path(), "x", &"a".repeat(MAX_READ), 0o600);
        let c = ctx(&[("OCF_RESKEY_api_token_file", &exact)]);
        assert_eq!(token(&c, &TP).unwrap().expose().len(), MAX_READ);
    }

    #[test]
    fn a_control_character_is_refused_naming_the_parameter_never_the_value() {
        for value in [
            "dop\u{1}krit",
            "dopkrit\n",
            "dop\tkrit",
            "dop\u{7f}krit",
            "dop\u{85}krit",
        ] {
            for name in ["api_token", "do_token"] {
                let e = token_of(&ctx(&[(&format!("OCF_RESKEY_{name}"), value)])).unwrap_err();
                assert_eq!(e.code, OcfCode::ErrConfigured, "{value:?}");
                assert_eq!(
                    e.reason,
                    format!("parameter '{name}' holds a control character: no API accepts it")
                );
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), "t", "\n dop\u{1}krit \n", 0o600);
        let e = token_of(&ctx(&[("OCF_RESKEY_api_token_file", &f)])).unwrap_err();
        // The file is this node's copy: 5, not a ban everywhere.
        assert_eq!(e.code, OcfCode::ErrInstalled);
        assert!(
            e.reason.starts_with("parameter 'api_token_file': ")
                && e.reason
                    .ends_with("t: the token holds a control character: no API accepts it"),
            "{}",
            e.reason
        );
        assert!(!e.reason.contains("krit"));
        // Spaces around the token in a file are not part of it; inside a parameter, a space is
        // no control character (the API judges it).
        let f = file(dir.path(), "s", " dop_v1_x\t\r\n", 0o600);
        assert_eq!(
            token_of(&ctx(&[("OCF_RESKEY_api_token_file", &f)]))
                .unwrap()
                .expose(),
            "dop_v1_x"
        );
        assert!(token_of(&ctx(&[("OCF_RESKEY_api_token", "dop v1")])).is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        // proptest's default of 256 cases each; PROPTEST_CASES overrides.
        proptest! {
            /// Any bytes: the head is whole lines of the file's start, bounded, never a panic.
            #[test]
            fn head_is_a_bounded_prefix(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
                if let Ok((text, cut)) = head(&bytes[..]) {
                    prop_assert!(text.len() <= MAX_READ);
                    prop_assert!(bytes.starts_with(text.as_bytes()));
                    prop_assert_eq!(cut, bytes.len() > MAX_READ);
                    if cut {
                        prop_assert!(text.is_empty() || text.ends_with('\n'));
                    } else {
                        prop_assert_eq!(text.as_bytes(), &bytes[..]);
                    }
                }
            }

            /// Any file content: a token, or 5 (nothing usable here) or 6 (a control character);
            /// a token is one trimmed line from the file's first 4096 bytes.
            #[test]
            fn any_token_file(content in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..6000),
                "[ \t\r\n]{0,3}[!-~\u{1}\u{7f}\u{e9} ]{0,80}(\r?\n.{0,40}){0,3}"
                    .prop_map(String::into_bytes),
            ]) {
                let dir = tempfile::tempdir().unwrap();
                let p = dir.path().join("t");
                std::fs::write(&p, &content).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
                let c = ctx(&[("OCF_RESKEY_api_token_file", p.to_str().unwrap())]);
                match token(&c, &TP) {
                    Ok(t) => {
                        let t = t.expose();
                        prop_assert!(!t.is_empty() && t.len() <= MAX_READ);
                        prop_assert_eq!(t, t.trim());
                        prop_assert!(!t.chars().any(char::is_control));
                        let start = &content[..content.len().min(MAX_READ)];
                        prop_assert!(start.windows(t.len()).any(|w| w == t.as_bytes()));
                    }
                    Err(e) => {
                        prop_assert!(
                            matches!(e.code, OcfCode::ErrInstalled | OcfCode::ErrConfigured),
                            "{}", e
                        );
                        prop_assert!(e.reason.starts_with("parameter 'api_token_file': "));
                    }
                }
            }
        }
    }

    #[test]
    fn plain_files_give_their_first_line() {
        assert_eq!(token_from_text("dop_v1_abc"), Ok("dop_v1_abc"));
        assert_eq!(token_from_text("dop_v1_abc\n"), Ok("dop_v1_abc"));
        assert_eq!(
            token_from_text("\n \n  dop_v1_abc  \nlater lines\n"),
            Ok("dop_v1_abc")
        );
        assert_eq!(
            token_from_text("# the API token\n\ndop_v1_abc\n"),
            Ok("dop_v1_abc")
        );
        assert_eq!(token_from_text("dop_v1_abc\r\n"), Ok("dop_v1_abc"));
        assert_eq!(
            token_from_text("\r\n# c\r\ndop_v1_abc\r\n"),
            Ok("dop_v1_abc")
        );
        assert_eq!(token_from_text("\u{feff}dop_v1_abc\n"), Ok("dop_v1_abc"));
    }

    #[test]
    fn yaml_files_give_api_token() {
        for text in [
            "apiToken: dop_v1_abc\n",
            "apiToken: dop_v1_abc",
            "apiToken:dop_v1_abc\n",
            "apiToken:   dop_v1_abc   \n",
            "apiToken: \"dop_v1_abc\"\n",
            "apiToken: 'dop_v1_abc'\n",
            "apiToken : 'dop_v1_abc'\n",
            "apiToken: dop_v1_abc # read-write, made 2016\n",
            "apiToken: \"dop_v1_abc\"  # quoted\n",
            "apiToken: 'dop_v1_abc'\t# quoted\n",
            "# DigitalOcean\n---\napiToken: dop_v1_abc\n",
            "region: nyc3\ndropletName: lb-1\napiToken: \"dop_v1_abc\"\nfloatingIp: 203.0.113.10\n",
            "apiTokenFile: /nowhere\napiToken: dop_v1_abc\n",
            "nested:\n  apiToken: dop_v1_other\napiToken: dop_v1_abc\n",
            "apiToken: dop_v1_abc\r\n",
            "region: nyc3\r\napiToken: 'dop_v1_abc'\r\n",
            "\u{feff}apiToken: \"dop_v1_abc\"\r\n",
        ] {
            assert_eq!(token_from_text(text), Ok("dop_v1_abc"), "{text:?}");
        }
    }

    #[test]
    fn files_without_a_token_say_why_without_quoting_it() {
        for (text, why) in [
            ("", "is empty"),
            (" \n\n\t\n", "is empty"),
            ("\r\n\r\n", "is empty"),
            ("# nothing yet\n", "is empty"),
            ("apiToken:\n", "empty 'apiToken:'"),
            ("apiToken: ''\n", "empty 'apiToken:'"),
            ("apiToken: \"\"\r\n", "empty 'apiToken:'"),
            ("apiToken: # to do\n", "empty 'apiToken:'"),
            (
                "region: nyc3\nfloatingIp: 203.0.113.10\n",
                "neither a token",
            ),
            ("nested:\n  apiToken: dop_v1_secret\n", "neither a token"),
            ("---\n", "neither a token"),
            ("dop_v1_secret # mine\n", "neither a token"),
            ("apiToken: 'dop_v1_secret\n", "not closed"),
            ("apiToken: \"dop_v1_secret'\n", "not closed"),
            ("apiToken: 'dop_v1_secret' extra\n", "more text"),
            ("apiToken: dop_v1_secret trailing\n", "spaces"),
            ("apiToken: 'dop_v1 secret'\n", "spaces"),
        ] {
            let e = token_from_text(text).expect_err(text);
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(
                !e.contains("dop_v1") && !e.contains("secret"),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn a_yaml_token_file_works_and_stays_secret() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = file(
            dir.path(),
            "digitalocean.yaml",
            "region: nyc3\napiToken: \"dop_v1_yamlfile\"\n",
            0o600,
        );
        let c = ctx(&[("OCF_RESKEY_api_token_file", &yaml)]);
        assert_eq!(token(&c, &TP).unwrap().expose(), "dop_v1_yamlfile");
        assert_eq!(c.log.scrub("x dop_v1_yamlfile y"), "x *** y");
        let broken = file(dir.path(), "b.yaml", "apiToken: 'dop_v1_yamlfile\n", 0o600);
        let e = token_of(&ctx(&[("OCF_RESKEY_api_token_file", &broken)])).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrInstalled);
        assert!(e
            .reason
            .contains("b.yaml has an 'apiToken:' value whose quote is not closed"));
        assert!(!e.reason.contains("dop_v1_yamlfile"), "{}", e.reason);
    }
}
