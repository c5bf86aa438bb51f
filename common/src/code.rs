//! OCF exit codes as a type, with the words a person reads on a terminal.
//! The numbers are fixed by the OCF 1.1 specification; Pacemaker's reaction to each is in the docs.

use std::fmt;

/// An OCF exit code. Only these values may leave an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OcfCode {
    Success,
    ErrGeneric,
    ErrArgs,
    ErrUnimplemented,
    ErrPerm,
    ErrInstalled,
    ErrConfigured,
    NotRunning,
    RunningPromoted,
    FailedPromoted,
    Degraded,
    DegradedPromoted,
}

impl OcfCode {
    pub const ALL: [OcfCode; 12] = [
        OcfCode::Success,
        OcfCode::ErrGeneric,
        OcfCode::ErrArgs,
        OcfCode::ErrUnimplemented,
        OcfCode::ErrPerm,
        OcfCode::ErrInstalled,
        OcfCode::ErrConfigured,
        OcfCode::NotRunning,
        OcfCode::RunningPromoted,
        OcfCode::FailedPromoted,
        OcfCode::Degraded,
        OcfCode::DegradedPromoted,
    ];

    /// The process exit status.
    pub const fn as_i32(self) -> i32 {
        match self {
            OcfCode::Success => 0,
            OcfCode::ErrGeneric => 1,
            OcfCode::ErrArgs => 2,
            OcfCode::ErrUnimplemented => 3,
            OcfCode::ErrPerm => 4,
            OcfCode::ErrInstalled => 5,
            OcfCode::ErrConfigured => 6,
            OcfCode::NotRunning => 7,
            OcfCode::RunningPromoted => 8,
            OcfCode::FailedPromoted => 9,
            OcfCode::Degraded => 190,
            OcfCode::DegradedPromoted => 191,
        }
    }

    pub fn from_i32(rc: i32) -> Option<OcfCode> {
        OcfCode::ALL.into_iter().find(|c| c.as_i32() == rc)
    }

    /// The constant's name, as in ocf-shellfuncs.
    pub const fn name(self) -> &'static str {
        match self {
            OcfCode::Success => "OCF_SUCCESS",
            OcfCode::ErrGeneric => "OCF_ERR_GENERIC",
            OcfCode::ErrArgs => "OCF_ERR_ARGS",
            OcfCode::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            OcfCode::ErrPerm => "OCF_ERR_PERM",
            OcfCode::ErrInstalled => "OCF_ERR_INSTALLED",
            OcfCode::ErrConfigured => "OCF_ERR_CONFIGURED",
            OcfCode::NotRunning => "OCF_NOT_RUNNING",
            OcfCode::RunningPromoted => "OCF_RUNNING_PROMOTED",
            OcfCode::FailedPromoted => "OCF_FAILED_PROMOTED",
            OcfCode::Degraded => "OCF_DEGRADED",
            OcfCode::DegradedPromoted => "OCF_DEGRADED_PROMOTED",
        }
    }

    /// Short words for people: "7 not running: …".
    pub const fn words(self) -> &'static str {
        match self {
            OcfCode::Success => "ok",
            OcfCode::ErrGeneric => "error",
            OcfCode::ErrArgs => "invalid arguments",
            OcfCode::ErrUnimplemented => "not implemented",
            OcfCode::ErrPerm => "insufficient privileges",
            OcfCode::ErrInstalled => "not installed",
            OcfCode::ErrConfigured => "not configured",
            OcfCode::NotRunning => "not running",
            OcfCode::RunningPromoted => "running promoted",
            OcfCode::FailedPromoted => "failed promoted",
            OcfCode::Degraded => "degraded",
            OcfCode::DegradedPromoted => "degraded promoted",
        }
    }
}

impl fmt::Display for OcfCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.as_i32(), self.words())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_ocf_ones() {
        let numbers: Vec<i32> = OcfCode::ALL.iter().map(|c| c.as_i32()).collect();
        assert_eq!(numbers, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 190, 191]);
    }

    #[test]
    fn round_trip_and_unknown() {
        for c in OcfCode::ALL {
            assert_eq!(OcfCode::from_i32(c.as_i32()), Some(c));
        }
        assert_eq!(OcfCode::from_i32(10), None);
        assert_eq!(OcfCode::from_i32(-1), None);
    }

    #[test]
    fn display_is_number_and_words() {
        assert_eq!(OcfCode::NotRunning.to_string(), "7 not running");
        assert_eq!(OcfCode::ErrConfigured.name(), "OCF_ERR_CONFIGURED");
    }
}
