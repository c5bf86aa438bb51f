//! The API token: from `api_token` (legacy `do_token`, maybe through cibsecret) or from
//! `api_token_file`, a root-only file. Whatever its source, the logger masks it at once.

use cloudha_common::{Context, OcfError, OcfResult, Secret};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Refuse a file that anyone but its owner (root or us) can write; warn when others can read.
/// Permissions are a property of this node: 4 (OCF_ERR_PERM), never 6. A missing file is 5.
pub fn read_token_file(path: &Path, param: &str, ctx: &Context) -> OcfResult<Secret> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => OcfError::installed(format!(
            "parameter '{param}': {shown} does not exist on this node"
        )),
        ErrorKind::PermissionDenied => {
            OcfError::perm(format!("parameter '{param}': cannot read {shown}: {e}"))
        }
        _ => OcfError::installed(format!("parameter '{param}': cannot read {shown}: {e}")),
    })?;
    if !meta.is_file() {
        return Err(OcfError::installed(format!(
            "parameter '{param}': {shown} is not a regular file"
        )));
    }
    let euid = effective_uid();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(OcfError::perm(format!(
            "parameter '{param}': {shown} belongs to uid {}, not root: its owner could replace the token (chown root {shown})",
            meta.uid()
        )));
    }
    if mode & 0o002 != 0 || (mode & 0o020 != 0 && meta.gid() != 0) {
        return Err(OcfError::perm(format!(
            "parameter '{param}': {shown} is writable by others (mode {mode:04o}): refusing it (chmod 600 {shown})"
        )));
    }
    if mode & 0o004 != 0 || (mode & 0o040 != 0 && meta.gid() != 0) {
        ctx.log.warn(format_args!(
            "parameter '{param}': {shown} is readable by others (mode {mode:04o}): chmod 600 {shown}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => {
            OcfError::perm(format!("parameter '{param}': cannot read {shown}: {e}"))
        }
        _ => OcfError::installed(format!("parameter '{param}': cannot read {shown}: {e}")),
    })?;
    let token = token_from_text(&text)
        .map_err(|why| OcfError::installed(format!("parameter '{param}': {shown} {why}")))?;
    Ok(Secret::new(token))
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
        return Err("is empty on this node");
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

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The token for API calls, masked in every log line from now on.
/// 6 when neither parameter is set (wrong everywhere); 5 when `api_token` arrived as the
/// cibsecret placeholder without a file to fall back on (missing on this node only).
pub fn token(ctx: &Context) -> OcfResult<Secret> {
    let p = &ctx.params;
    if let Some(t) = p.secret("api_token") {
        ctx.log.mask(&t);
        return Ok(t);
    }
    if let Some(file) = p.get("api_token_file") {
        let t = read_token_file(Path::new(file), "api_token_file", ctx)?;
        ctx.log.mask(&t);
        return Ok(t);
    }
    if p.is_placeholder("api_token") {
        // Gives 5 naming the parameter and `cibsecret sync`.
        p.require("api_token")?;
    }
    Err(OcfError::configured(
        "no API token: set parameter 'api_token' (legacy 'do_token') or 'api_token_file'",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SPEC;
    use cloudha_common::{Action, Logger, OcfCode, OcfEnv};
    use std::os::unix::fs::PermissionsExt;

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
        assert_eq!(token(&c).unwrap().expose(), "dop_v1_param");
        let c = ctx(&[("OCF_RESKEY_api_token_file", &good)]);
        assert_eq!(token(&c).unwrap().expose(), "dop_v1_file");
        assert_eq!(c.log.scrub("x dop_v1_file y"), "x *** y");
        let e = token(&ctx(&[])).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrConfigured);
        let e = token(&ctx(&[("OCF_RESKEY_api_token", "lrm://")])).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrInstalled);
        // A placeholder with a file to fall back on is fine.
        let c = ctx(&[
            ("OCF_RESKEY_api_token", "lrm://"),
            ("OCF_RESKEY_api_token_file", &good),
        ]);
        assert_eq!(token(&c).unwrap().expose(), "dop_v1_file");
    }

    #[test]
    fn file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let code = |path: &str| {
            token(&ctx(&[("OCF_RESKEY_api_token_file", path)]))
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
        assert_eq!(token(&c).unwrap().expose(), "dop_v1_yamlfile");
        assert_eq!(c.log.scrub("x dop_v1_yamlfile y"), "x *** y");
        let broken = file(dir.path(), "b.yaml", "apiToken: 'dop_v1_yamlfile\n", 0o600);
        let e = token(&ctx(&[("OCF_RESKEY_api_token_file", &broken)])).unwrap_err();
        assert_eq!(e.code, OcfCode::ErrInstalled);
        assert!(e
            .reason
            .contains("b.yaml has an 'apiToken:' value whose quote is not closed"));
        assert!(!e.reason.contains("dop_v1_yamlfile"), "{}", e.reason);
    }
}
