//! The one error type of every agent: an OCF code and a reason a person can act on.
//! `main` turns it into the exit status and one `ocf-exit-reason:` line.

use crate::code::OcfCode;
use std::fmt;

/// A failed action: the code Pacemaker acts on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcfError {
    pub code: OcfCode,
    pub reason: String,
}

pub type OcfResult<T> = Result<T, OcfError>;

impl OcfError {
    pub fn new(code: OcfCode, reason: impl Into<String>) -> Self {
        // The exit reason is one line in the CIB: fold any newline a reason may carry.
        let reason = reason.into().replace(['\n', '\r'], " ");
        OcfError { code, reason }
    }
    /// 1: a soft failure, recovered per on-fail (restart or move).
    pub fn generic(reason: impl Into<String>) -> Self {
        Self::new(OcfCode::ErrGeneric, reason)
    }
    /// 2: bad arguments on this node.
    pub fn args(reason: impl Into<String>) -> Self {
        Self::new(OcfCode::ErrArgs, reason)
    }
    /// 3: this action is not implemented.
    pub fn unimplemented(reason: impl Into<String>) -> Self {
        Self::new(OcfCode::ErrUnimplemented, reason)
    }
    /// 4: a permission problem on this node.
    pub fn perm(reason: impl Into<String>) -> Self {
        Self::new(OcfCode::ErrPerm, reason)
    }
    /// 5: something this node lacks (a binary, a file, an interface).
    pub fn installed(reason: impl Into<String>) -> Self {
        Self::new(OcfCode::ErrInstalled, reason)
    }
    /// 6: a parameter wrong on every node. Bans the resource cluster-wide: never for a transient fault.
    pub fn configured(reason: impl Into<String>) -> Self {
        Self::new(OcfCode::ErrConfigured, reason)
    }
    /// 7 as an error: a recurring monitor found the resource stopped.
    pub fn not_running(reason: impl Into<String>) -> Self {
        Self::new(OcfCode::NotRunning, reason)
    }
}

impl fmt::Display for OcfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

impl std::error::Error for OcfError {}

/// Attach an OCF code and a reason to any error: `read(p).ocf(OcfCode::ErrInstalled, "config")`.
pub trait OcfContext<T> {
    fn ocf(self, code: OcfCode, what: impl fmt::Display) -> OcfResult<T>;
}

impl<T, E: fmt::Display> OcfContext<T> for Result<T, E> {
    fn ocf(self, code: OcfCode, what: impl fmt::Display) -> OcfResult<T> {
        self.map_err(|e| OcfError::new(code, format!("{what}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_carry_their_codes() {
        assert_eq!(OcfError::generic("x").code, OcfCode::ErrGeneric);
        assert_eq!(OcfError::args("x").code, OcfCode::ErrArgs);
        assert_eq!(OcfError::unimplemented("x").code, OcfCode::ErrUnimplemented);
        assert_eq!(OcfError::perm("x").code, OcfCode::ErrPerm);
        assert_eq!(OcfError::installed("x").code, OcfCode::ErrInstalled);
        assert_eq!(OcfError::configured("x").code, OcfCode::ErrConfigured);
        assert_eq!(OcfError::not_running("x").code, OcfCode::NotRunning);
    }

    #[test]
    fn reason_is_one_line() {
        let e = OcfError::generic("first\nsecond\r\nthird");
        assert_eq!(e.reason, "first second  third");
    }

    #[test]
    fn context_maps_any_error() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("boom"));
        let e = r
            .ocf(OcfCode::ErrInstalled, "parameter 'config'")
            .unwrap_err();
        assert_eq!(e.code, OcfCode::ErrInstalled);
        assert_eq!(e.reason, "parameter 'config': boom");
    }
}
