//! The API token: from `api_token` (legacy `do_token`, maybe through cibsecret) or from
//! `api_token_file`, a root-only file. Whatever its source, the logger masks it at once.

use crate::{API_TOKEN, API_TOKEN_FILE};
use cloudha_common::{Context, OcfCode, OcfError, OcfResult, Secret};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Refuse a file that anyone but its owner (root or us) can write; warn when others can read.
/// Permissions are a property of this node: 4 (OCF_ERR_PERM), never 6. A missing file is 5.
pub fn read_token_file(path: &Path, ctx: &Context) -> OcfResult<Secret> {
    let shown = path.display();
    let fault = |code, detail: String| ctx.params.fault(code, &API_TOKEN_FILE, detail);
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
            ctx.params.name_of(&API_TOKEN_FILE)
        ));
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    let token = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if token.is_empty() {
        return Err(fault(
            OcfCode::ErrInstalled,
            format!("{shown} is empty on this node"),
        ));
    }
    Ok(Secret::new(token))
}

/// Mask the token given as a parameter before anything is logged, whatever the action.
pub fn mask_parameter(ctx: &Context) {
    if let Ok(Some(t)) = ctx.params.read(&API_TOKEN) {
        ctx.log.mask(&t);
    }
}

/// The token for API calls, masked in every log line from now on.
/// 6 when neither parameter is set (wrong everywhere); 5 when `api_token` arrived as the
/// cibsecret placeholder without a file to fall back on (missing on this node only).
pub fn token(ctx: &Context) -> OcfResult<Secret> {
    let p = &ctx.params;
    if p.has(&API_TOKEN) {
        let t = p.need(&API_TOKEN)?;
        ctx.log.mask(&t);
        return Ok(t);
    }
    if let Some(file) = p.read(&API_TOKEN_FILE)? {
        let t = read_token_file(Path::new(&file), ctx)?;
        ctx.log.mask(&t);
        return Ok(t);
    }
    // Given, yet not usable: the cibsecret placeholder (5, naming `cibsecret sync`).
    p.read(&API_TOKEN)?;
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
}
