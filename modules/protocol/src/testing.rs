//! A recording test double for [`Runner`], and the golden-case harness every module's
//! unit tests run through.
//!
//! The double is ordered and strict: a test lists every command it expects, with its
//! stdin, in order, and the output the real tool gave (captured in a lab); a command that
//! differs, an unexpected stdin, or an expected command that never ran fails the test.
//! D-Bus calls (with their replies) and in-process probes (with their answers) are
//! scripted in the same list, in the same strict order.
//! Randomness is predictable, and time is a clock that moves only when the module sleeps.

use crate::args::{AnsibleFlags, Invocation};
use crate::bus::{BusCall, BusError, BusReply};
use crate::error::{Error, Result};
use crate::module::{run_with, Module, RunReport};
use crate::runner::{display_argv, Output, Runner};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One scripted exchange with the host.
#[derive(Debug, Clone)]
enum Expected {
    Command {
        argv: Vec<String>,
        stdin: Option<String>,
        out: Output,
    },
    Bus {
        call: BusCall,
        reply: BusReply,
    },
    Probe {
        what: String,
        value: Value,
    },
}

impl Expected {
    fn describe(&self) -> String {
        match self {
            Expected::Command { argv, .. } => display_argv(argv),
            Expected::Bus { call, .. } => display_argv(&call.record()),
            Expected::Probe { what, .. } => format!("probe {what}"),
        }
    }
}

#[derive(Debug, Default)]
pub struct FakeRunner {
    expected: VecDeque<Expected>,
    files: BTreeMap<String, String>,
    /// The host lacks a UTF-8 C locale.
    no_utf8: bool,
    /// D-Bus calls are scripted: the double plays a module with a D-Bus client (one that
    /// scripts none plays a module without one, which makes no D-Bus call at all).
    bus: bool,
    clock: Duration,
}

impl FakeRunner {
    pub fn new() -> Self {
        Self::default()
    }
    /// Expect `argv` next, without stdin, answering `out`.
    pub fn expect(mut self, argv: &[&str], out: Output) -> Self {
        self.expected.push_back(Expected::Command {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            out,
        });
        self
    }
    /// Expect the D-Bus call `call` next, answering `reply`.
    pub fn expect_bus(mut self, call: BusCall, reply: BusReply) -> Self {
        self.bus = true;
        self.expected.push_back(Expected::Bus { call, reply });
        self
    }
    /// Expect the probe `what` next, answering `value`.
    pub fn expect_probe(mut self, what: &str, value: Value) -> Self {
        self.expected.push_back(Expected::Probe {
            what: what.to_string(),
            value,
        });
        self
    }
    /// Expect `argv` next with exactly `stdin` on its standard input, answering `out`.
    pub fn expect_stdin(mut self, argv: &[&str], stdin: &str, out: Output) -> Self {
        self.expected.push_back(Expected::Command {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: Some(stdin.to_string()),
            out,
        });
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

/// The bytes the [`FakeRunner`] (and a recorded run, see [`crate::record`]) hands out as
/// random ones: `00 01 02 ...`.
pub fn predictable(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8;
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
            let left: Vec<String> = self.expected.iter().map(Expected::describe).collect();
            panic!("test double: expected commands never ran: {left:?}");
        }
    }
}

impl Runner for FakeRunner {
    fn read_file(&mut self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }

    /// The files it serves directly in `dir`.
    fn list_dir(&mut self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.files
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .map(str::to_string)
            .collect()
    }

    fn utf8_locale(&self) -> bool {
        !self.no_utf8
    }

    fn has_bus(&self) -> bool {
        self.bus
    }

    /// Not random at all: every call gives 00 01 02 ... (see [`first_random_hex`]), so
    /// planned commands that hold random values are known to the test.
    fn random(&mut self, buf: &mut [u8]) -> Result<()> {
        predictable(buf);
        Ok(())
    }

    fn now(&self) -> Duration {
        self.clock
    }

    fn sleep(&mut self, d: Duration) {
        self.clock += d;
    }

    fn run(&mut self, argv: &[String], stdin: Option<&str>) -> Result<Output> {
        let got = display_argv(argv);
        let (want_argv, want_stdin, out) = match self.next(&got)? {
            Expected::Command { argv, stdin, out } => (argv, stdin, out),
            other => return Err(mismatch(&other, &got)),
        };
        if want_argv != argv {
            return Err(Error::bug(format!(
                "test double: expected `{}`, got `{got}`",
                display_argv(&want_argv)
            )));
        }
        if want_stdin.as_deref() != stdin {
            return Err(Error::bug(format!(
                "test double: `{got}` expected stdin {want_stdin:?}, got {stdin:?}"
            )));
        }
        Ok(out)
    }

    fn bus(&mut self, call: &BusCall) -> Result<BusReply> {
        let got = display_argv(&call.record());
        match self.next(&got)? {
            Expected::Bus { call: want, reply } if want == *call => Ok(reply),
            other => Err(mismatch(&other, &got)),
        }
    }

    fn probe(&mut self, what: &str, _probe: &mut dyn FnMut() -> Result<Value>) -> Result<Value> {
        let got = format!("probe {what}");
        match self.next(&got)? {
            Expected::Probe { what: want, value } if want == what => Ok(value),
            other => Err(mismatch(&other, &got)),
        }
    }
}

impl FakeRunner {
    fn next(&mut self, got: &str) -> Result<Expected> {
        self.expected
            .pop_front()
            .ok_or_else(|| Error::bug(format!("test double: unexpected `{got}`")))
    }
}

fn mismatch(want: &Expected, got: &str) -> Error {
    Error::bug(format!(
        "test double: expected `{}`, got `{got}`",
        want.describe()
    ))
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

// ---------------------------------------------------------------------------------------
// Golden cases

/// The variable that makes [`run_cases`] write each case's `result.json` from what the
/// module now returns instead of comparing (`KVMNET_BLESS=1 cargo test`). Review the diff
/// before committing it.
pub const BLESS: &str = "KVMNET_BLESS";

/// A text in a case file: inline, or `{"file": "relative/path"}` (to the case folder).
fn text(case: &Path, v: &Value, what: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => {
            let rel = m.get("file").and_then(Value::as_str).unwrap_or_else(|| {
                panic!(
                    "{}: {what}: want a string or {{\"file\": ...}}",
                    case.display()
                )
            });
            let p = case.join(rel);
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        }
        Value::Null => String::new(),
        other => panic!("{}: {what}: not text: {other}", case.display()),
    }
}

fn read_json(path: &Path) -> Option<Value> {
    let t = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// One entry of `calls.json`: a command (`argv`, `stdin`, `rc`, `stdout`, `stderr`), a
/// D-Bus call (`bus`: `{destination, path, interface, member, args}`, answered by `reply`,
/// a list of values, or `error`: `{name, message}`), or a probe (`probe`: what, answered
/// by `value`).
fn case_call(case: &Path, c: &Value, what: &str) -> Expected {
    if let Some(b) = c.get("bus") {
        let field = |k: &str| -> String {
            b[k].as_str()
                .unwrap_or_else(|| panic!("{}: {what}.bus.{k}: want a string", case.display()))
                .to_string()
        };
        let args = b["args"].as_array().cloned().unwrap_or_default();
        let call = BusCall::new(
            field("destination"),
            field("path"),
            field("interface"),
            field("member"),
            args,
        );
        let reply = match c.get("error") {
            Some(e) => Err(BusError {
                name: e["name"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
            }),
            None => Ok(c["reply"].as_array().cloned().unwrap_or_default()),
        };
        return Expected::Bus { call, reply };
    }
    if let Some(p) = c.get("probe") {
        return Expected::Probe {
            what: p.as_str().unwrap_or_default().to_string(),
            value: c.get("value").cloned().unwrap_or(Value::Null),
        };
    }
    let argv: Vec<String> = serde_json::from_value(c["argv"].clone())
        .unwrap_or_else(|e| panic!("{}: {what}.argv: {e}", case.display()));
    let out = Output {
        rc: c["rc"].as_i64().unwrap_or(0) as i32,
        stdout: text(case, &c["stdout"], what),
        stderr: text(case, &c["stderr"], what),
    };
    let stdin = c
        .get("stdin")
        .filter(|v| !v.is_null())
        .map(|v| text(case, v, what));
    Expected::Command { argv, stdin, out }
}

/// The test double a case describes: `calls.json` (every command in order: `argv`,
/// optional `stdin`, the answer's `rc`, `stdout`, `stderr`), `files.json` (paths the
/// module reads directly) and `host.json` (`{"utf8_locale": false}`).
fn case_runner(case: &Path) -> FakeRunner {
    let mut r = FakeRunner::new();
    let calls = read_json(&case.join("calls.json")).unwrap_or(Value::Array(Vec::new()));
    for (i, c) in calls.as_array().into_iter().flatten().enumerate() {
        let e = case_call(case, c, &format!("calls[{i}]"));
        r.bus |= matches!(e, Expected::Bus { .. });
        r.expected.push_back(e);
    }
    if let Some(Value::Object(files)) = read_json(&case.join("files.json")) {
        for (path, v) in &files {
            r.files.insert(path.clone(), text(case, v, path));
        }
    }
    if let Some(h) = read_json(&case.join("host.json")) {
        r.no_utf8 = h["utf8_locale"] == Value::Bool(false);
    }
    r
}

/// Run one case folder: `args.json` through module `M` against the double; the result
/// must equal `result.json` (or, with [`BLESS`], is written there). Returns a failure
/// description.
pub fn run_case<M: Module>(case: &Path) -> std::result::Result<(), String> {
    let args = read_json(&case.join("args.json"))
        .ok_or_else(|| format!("{}: no args.json", case.display()))?;
    let runner = case_runner(case);
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_module::<M>(args, runner)
    }))
    .map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{}: {msg}", case.display())
    })?;
    let expected_rc = if report.json["failed"] == Value::Bool(true) {
        1
    } else {
        0
    };
    if report.rc != expected_rc {
        return Err(format!(
            "{}: rc {} for {}",
            case.display(),
            report.rc,
            report.json
        ));
    }
    let path = case.join("result.json");
    let pretty = serde_json::to_string_pretty(&report.json).unwrap_or_default() + "\n";
    if std::env::var(BLESS).as_deref() == Ok("1") {
        if pretty.contains("test double: ") {
            // a script that does not fit the module is never an expected result
            return Err(format!(
                "{}: not blessed, the double's script does not fit:\n{pretty}",
                case.display()
            ));
        }
        std::fs::write(&path, pretty).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(());
    }
    let want = read_json(&path).ok_or_else(|| {
        format!(
            "{}: no result.json (run with {BLESS}=1 to write it)",
            case.display()
        )
    })?;
    if want != report.json {
        return Err(format!(
            "{}: result differs (run with {BLESS}=1 to accept it)\n--- want\n{}\n--- got\n{pretty}",
            case.display(),
            serde_json::to_string_pretty(&want).unwrap_or_default()
        ));
    }
    Ok(())
}

/// Run every case folder under `dir` (each subfolder holding an `args.json`); fails the
/// test listing every case that failed.
pub fn run_cases<M: Module>(dir: &str) {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("args.json").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "{dir}: no cases");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| run_case::<M>(c).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// The property every module holds (its unit tests run it with the `props` feature): an
/// args file of any shape, with the module's own option names, Ansible's keys and anything
/// at all, gives exactly one JSON result with `failed`, `changed` and `msg`, and the exit
/// status Ansible expects. The double answers nothing: a run that gets as far as reading the
/// host fails there, which is one result too.
#[cfg(feature = "props")]
pub mod props {
    use super::{run_module, FakeRunner};
    use crate::module::Module;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Any JSON, and objects whose keys are the module's options, `_ansible_*` keys or
    /// anything.
    pub fn any_args(options: Vec<String>) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            ".{0,16}".prop_map(Value::String),
            Just(json!("ens32")),
            Just(json!("--help")),
            Just(json!("present")),
            Just(json!("absent")),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let mut keys: Vec<String> = options;
        keys.extend(
            [
                "_ansible_check_mode",
                "_ansible_no_log",
                "_ansible_diff",
                "_ansible_verbosity",
            ]
            .map(String::from),
        );
        let key = prop_oneof![prop::sample::select(keys), ".{0,6}"];
        prop_oneof![
            value.clone(),
            prop::collection::btree_map(key, value, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    }

    /// The option names of module `M` (from its spec).
    pub fn option_names<M: Module>() -> Vec<String> {
        M::spec()
            .to_argument_spec()
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Run `M` on `args` against a double that answers nothing: one well-formed result.
    pub fn one_result<M: Module>(args: Value) -> Result<(), TestCaseError> {
        let r = run_module::<M>(args, FakeRunner::new());
        let j = &r.json;
        prop_assert!(j.is_object(), "{}", j);
        prop_assert!(j["failed"].is_boolean(), "{}", j);
        prop_assert!(j["changed"].is_boolean(), "{}", j);
        prop_assert!(j["msg"].is_string(), "{}", j);
        prop_assert_eq!(j["changed"].as_bool(), Some(false), "nothing ran: {}", j);
        prop_assert_eq!(r.rc, if j["failed"] == true { 1 } else { 0 });
        Ok(())
    }
}
