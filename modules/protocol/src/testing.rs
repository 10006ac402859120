//! A recording test double for [`Runner`]: unit tests list the exact argv they expect,
//! in order, with canned outputs captured from the real tools.

use crate::args::{AnsibleFlags, Invocation};
use crate::error::{Error, Result};
use crate::module::{run_with, Module, RunReport};
use crate::runner::{display_argv, Output, Runner};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Default)]
pub struct FakeRunner {
    expected: VecDeque<(Vec<String>, Output)>,
    files: BTreeMap<String, String>,
    /// The host lacks a UTF-8 C locale.
    no_utf8: bool,
}

impl FakeRunner {
    pub fn new() -> Self {
        Self::default()
    }
    /// Expect `argv` next, answering `out`.
    pub fn expect(mut self, argv: &[&str], out: Output) -> Self {
        self.expected
            .push_back((argv.iter().map(|s| s.to_string()).collect(), out));
        self
    }
    /// Serve `content` for `path` to [`Ctx::read_file`](crate::Ctx::read_file); any other
    /// path reads as missing (the real file system is never touched).
    pub fn file(mut self, path: &str, content: &str) -> Self {
        self.files.insert(path.to_string(), content.to_string());
        self
    }
    /// Play a host without a UTF-8 C locale.
    pub fn without_utf8_locale(mut self) -> Self {
        self.no_utf8 = true;
        self
    }
}

/// The hex text of `n` random bytes as the [`FakeRunner`] hands them out.
pub fn first_random_hex(n: usize) -> String {
    (0..n).map(|i| format!("{:02x}", i as u8)).collect()
}

/// Every expected command must have run: a leftover means the module skipped a call the
/// test relies on.
impl Drop for FakeRunner {
    fn drop(&mut self) {
        if !self.expected.is_empty() && !std::thread::panicking() {
            let left: Vec<String> = self.expected.iter().map(|(a, _)| display_argv(a)).collect();
            panic!("test double: expected commands never ran: {left:?}");
        }
    }
}

impl Runner for FakeRunner {
    fn read_file(&mut self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }

    fn utf8_locale(&self) -> bool {
        !self.no_utf8
    }

    /// Not random at all: every call gives 00 01 02 ... (see [`first_random_hex`]), so
    /// planned commands that hold random values are known to the test.
    fn random(&mut self, buf: &mut [u8]) -> Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = i as u8;
        }
        Ok(())
    }

    fn run(&mut self, argv: &[String], _stdin: Option<&str>) -> Result<Output> {
        match self.expected.pop_front() {
            Some((want, out)) if want == argv => Ok(out),
            Some((want, _)) => Err(Error::bug(format!(
                "test double: expected `{}`, got `{}`",
                display_argv(&want),
                display_argv(argv)
            ))),
            None => Err(Error::bug(format!(
                "test double: unexpected command `{}`",
                display_argv(argv)
            ))),
        }
    }
}

/// Run module `M` with these task options (a JSON object, `_ansible_*` keys allowed)
/// against a test double. No host lock is taken.
pub fn run_module<M: Module>(args: Value, runner: FakeRunner) -> RunReport {
    let inv = Invocation::parse(&args.to_string()).unwrap_or_else(|e| Invocation {
        flags: AnsibleFlags::default(),
        options: serde_json::Map::from_iter([("__unparsable".to_string(), Value::String(e.msg))]),
    });
    run_with::<M>(inv, Box::new(runner), None)
}

/// The task options `args` with check mode and diff mode on.
pub fn check_diff(mut args: Value) -> Value {
    args["_ansible_check_mode"] = Value::Bool(true);
    args["_ansible_diff"] = Value::Bool(true);
    args
}

/// A result's `commands`, each joined with spaces, for compact assertions.
pub fn commands(result: &Value) -> Vec<String> {
    result["commands"]
        .as_array()
        .map(|cmds| {
            cmds.iter()
                .map(|c| {
                    c.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}
