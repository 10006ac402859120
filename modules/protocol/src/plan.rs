//! What a module's `plan` hands to `apply`, `verify` and the result: typed desired state,
//! typed steps, diffs and return values.

use crate::bus::BusCall;
use serde_json::{Map, Value};

/// A command a step runs: argv (never through a shell) and what it reads on stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    pub stdin: Option<String>,
}

impl Command {
    pub fn new<S: AsRef<str>>(argv: impl IntoIterator<Item = S>) -> Self {
        Command {
            argv: argv.into_iter().map(|s| s.as_ref().to_string()).collect(),
            stdin: None,
        }
    }
    pub fn with_stdin(mut self, stdin: impl Into<String>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }
}

/// One step of a plan, typed by each module (`enum Action { CreateProfile {..}, .. }`):
/// apply matches on it; the protocol only needs its summary and its command.
pub trait Step: std::fmt::Debug {
    /// Short human phrase: "create bridge profile bridge-br0".
    fn summary(&self) -> String;
    /// The command that makes the change, as it can be known when planning: a value only
    /// the host assigns during apply (the UUID NetworkManager gives a new profile) is shown
    /// as a `<...>` placeholder. `None` for a step that runs no command.
    fn command(&self) -> Option<Command>;
    /// A step that is a D-Bus call rather than a command (a NetworkManager checkpoint):
    /// the call, placeholders as in [`Step::command`]. Check mode's `commands` show it as
    /// [`BusCall::record`].
    fn bus_call(&self) -> Option<BusCall> {
        None
    }
}

/// A step that is exactly one planned command (modules whose apply needs nothing but the
/// commands in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub summary: String,
    pub command: Command,
}

impl Action {
    pub fn new<S: AsRef<str>>(
        summary: impl Into<String>,
        argv: impl IntoIterator<Item = S>,
    ) -> Self {
        Action {
            summary: summary.into(),
            command: Command::new(argv),
        }
    }
    pub fn with_stdin(mut self, stdin: impl Into<String>) -> Self {
        self.command.stdin = Some(stdin.into());
        self
    }
}

impl Step for Action {
    fn summary(&self) -> String {
        self.summary.clone()
    }
    fn command(&self) -> Option<Command> {
        Some(self.command.clone())
    }
}

/// One object's before/after for `--diff`. Values are text or mappings.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub before_header: String,
    pub after_header: String,
    pub before: Value,
    pub after: Value,
}

impl Diff {
    pub fn new(
        header: impl Into<String>,
        before: impl Into<Value>,
        after: impl Into<Value>,
    ) -> Self {
        let h = header.into();
        Diff {
            before_header: h.clone(),
            after_header: h,
            before: before.into(),
            after: after.into(),
        }
    }
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "before": self.before, "after": self.after,
            "before_header": self.before_header, "after_header": self.after_header,
        })
    }
}

/// What the module will do and report: `desired` (the module's typed target, for apply
/// and verify), the steps, the diffs, the return values and the message.
#[derive(Debug, Clone)]
pub struct Plan<D, A> {
    pub desired: D,
    pub actions: Vec<A>,
    pub diffs: Vec<Diff>,
    /// The module's own return values (`bridge`, `link`, `network`, `interface`, ...),
    /// as they will be after the change; `verify` may refresh them.
    pub result: Map<String, Value>,
    /// One human sentence; a default is made from the steps when unset.
    pub msg: Option<String>,
    /// Set when a definition changed that the running object has not taken yet.
    pub restart_required: Option<bool>,
}

impl<D, A: Step> Plan<D, A> {
    pub fn new(desired: D) -> Self {
        Plan {
            desired,
            actions: Vec::new(),
            diffs: Vec::new(),
            result: Map::new(),
            msg: None,
            restart_required: None,
        }
    }
    pub fn push(&mut self, action: A) {
        self.actions.push(action);
    }
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }
    /// The steps' summaries joined with `; ` (the default message is made from them).
    pub fn summaries(&self) -> String {
        self.actions
            .iter()
            .map(Step::summary)
            .collect::<Vec<_>>()
            .join("; ")
    }
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.result.insert(key.to_string(), value.into());
    }
    /// The planned commands and D-Bus calls, in order (check mode's `commands`).
    pub fn commands(&self) -> Vec<Vec<String>> {
        self.actions
            .iter()
            .filter_map(|a| match a.bus_call() {
                Some(call) => Some(call.record()),
                None => a.command().map(|c| c.argv),
            })
            .collect()
    }
}
