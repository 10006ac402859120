//! One error type for every module; the kind tells what went wrong, the message says it
//! to a human, and command failures carry the command line, exit status and stderr.

use serde_json::{Map, Value};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The task's options are wrong (unknown option, bad type, bad value, missing option).
    InvalidArgument,
    /// A program or service the module needs is missing or not running.
    MissingDependency,
    /// An external command exited non-zero.
    CommandFailed,
    /// The request is valid but cannot be done on this host / with this object.
    NotSupported,
    /// A change was applied but re-reading the state shows it did not take effect.
    VerificationFailed,
    /// Another run holds the host lock for too long.
    Busy,
    /// A defect in the module itself.
    Bug,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::MissingDependency => "missing_dependency",
            ErrorKind::CommandFailed => "command_failed",
            ErrorKind::NotSupported => "not_supported",
            ErrorKind::VerificationFailed => "verification_failed",
            ErrorKind::Busy => "busy",
            ErrorKind::Bug => "bug",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub msg: String,
    /// Extra keys for the failure result (`cmd`, `rc`, `stdout`, `stderr`, ...).
    pub extra: Map<String, Value>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
            extra: Map::new(),
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, msg)
    }
    pub fn missing_dependency(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::MissingDependency, msg)
    }
    pub fn not_supported(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotSupported, msg)
    }
    pub fn verification(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::VerificationFailed, msg)
    }
    pub fn bug(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Bug, msg)
    }
    /// An option that is needed for what the task asks but was not given.
    pub fn missing_option(option: &str, why: &str) -> Self {
        Self::invalid(format!("missing required option '{option}': {why}"))
    }
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }
    /// Prefix the message with what was being done.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::bug(format!("JSON: {e}"))
    }
}
