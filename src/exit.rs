//! How a command ends: [`Exit`] and its exit code, decided in one place, and the error types the
//! faces turn into it.

use crate::run::RunError;

/// How a command ended, as an exit code: 0 ok, 1 an assertion failed (or an `--abort-on`
/// condition stopped the run), 2 bad input or usage (or the results could not be written),
/// 3 the input stopped early (a truncated `.gz`) but what was read of it was used, 4 no request
/// got an answer, 130 interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    AssertionFailed,
    BadInput,
    NothingAnswered,
    InputIncomplete,
    Interrupted,
}

impl Exit {
    /// The process's exit code: the one place a code is decided.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::AssertionFailed => 1,
            Exit::BadInput => 2,
            Exit::NothingAnswered => 4,
            Exit::InputIncomplete => 3,
            Exit::Interrupted => 130,
        }
    }
}

/// An error caused by what the user gave us (flags, files, formats): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<crate::config::ConfigError> for UsageError {
    fn from(e: crate::config::ConfigError) -> Self {
        UsageError(e.to_string())
    }
}

/// Run errors that come from the user's input become usage errors; the rest stay internal.
pub fn run_error(e: RunError) -> anyhow::Error {
    match e {
        RunError::Internal(_) => anyhow::Error::new(e),
        other => anyhow::Error::new(UsageError(other.to_string())),
    }
}

impl Exit {
    /// How a command that failed with `e` ends: `sluice parse … | head` closing the pipe is not an
    /// error of ours (0); anything else is the user's to fix (2), as 1 is kept for failed checks.
    pub fn of_error(e: &anyhow::Error) -> Exit {
        let broken_pipe = e
            .chain()
            .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe));
        if broken_pipe { Exit::Ok } else { Exit::BadInput }
    }
}
