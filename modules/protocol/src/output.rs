//! The one JSON object a module prints.

use crate::ctx::Ctx;
use crate::error::Error;
use crate::plan::Diff;
use crate::spec::Spec;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static PRINTED: AtomicBool = AtomicBool::new(false);
static INVOCATION: Mutex<Option<(Value, Masker)>> = Mutex::new(None);

pub const MASK: &str = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";
/// What replaces a masked value inside a longer text (as Ansible does).
pub const MASK_PART: &str = "********";
/// A string longer than this is shortened wherever a result would echo it.
pub const MAX_ECHO: usize = crate::spec::MAX_TEXT;

/// Hides values that must not appear in a result: every value of the task's options when
/// the task is `no_log`, and the values of `no_log` options always. A value equal to a
/// hidden one becomes [`MASK`]; a text containing one has it replaced by [`MASK_PART`].
/// Values shorter than three characters are hidden only where they are the whole value
/// (replacing every `0` inside other texts would hide nothing and garble everything).
#[derive(Debug, Clone, Default)]
pub struct Masker {
    values: Vec<String>,
}

fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if !s.is_empty() => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
        Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
        _ => {}
    }
}

impl Masker {
    /// The values to hide for this task: `raw` is what the task gave, `validated` the
    /// same after validation (coerced, normalised), when it got that far.
    pub fn new(
        spec: &Spec,
        raw: &Map<String, Value>,
        validated: Option<&Map<String, Value>>,
        no_log: bool,
    ) -> Masker {
        let mut values = Vec::new();
        if no_log {
            raw.values().for_each(|v| leaves(v, &mut values));
            if let Some(val) = validated {
                // Only options the task gave: defaults are no secret of the task.
                for o in &spec.options {
                    let given = std::iter::once(&o.name)
                        .chain(o.aliases.iter())
                        .any(|k| raw.get(*k).is_some_and(|v| !v.is_null()));
                    if let (true, Some(v)) = (given, val.get(o.name)) {
                        leaves(v, &mut values);
                    }
                }
            }
        }
        for path in spec.no_log_paths() {
            for src in [Some(raw), validated].into_iter().flatten() {
                let (first, rest) = path.split_once('.').unwrap_or((path.as_str(), ""));
                let mut cur = src.get(first);
                for part in rest.split('.').filter(|p| !p.is_empty()) {
                    cur = cur.and_then(|c| c.get(part));
                }
                if let Some(v) = cur {
                    leaves(v, &mut values);
                }
            }
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn text(&self, s: &str) -> Option<String> {
        if self.values.iter().any(|v| v == s) {
            return Some(MASK.to_string());
        }
        let mut out = s.to_string();
        for v in self.values.iter().filter(|v| v.len() >= 3) {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK_PART);
            }
        }
        (out != s).then_some(out)
    }

    /// Hide the values everywhere in a result (as Ansible's `remove_values` does, the
    /// invocation included).
    pub fn apply(&self, result: &mut Value) {
        if self.is_empty() {
            return;
        }
        if let Value::Object(m) = result {
            for (k, v) in m.iter_mut() {
                if !matches!(k.as_str(), "changed" | "failed" | "error_kind") {
                    self.walk(v);
                }
            }
        }
    }

    fn walk(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(m) = self.text(s) {
                    *s = m;
                }
            }
            Value::Number(n) if self.values.iter().any(|x| *x == n.to_string()) => {
                *v = Value::String(MASK.to_string());
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.walk(x)),
            Value::Object(m) => m.values_mut().for_each(|x| self.walk(x)),
            _ => {}
        }
    }
}

/// A string shortened for echoing: the start and the length.
fn shorten(v: &mut Value) {
    match v {
        Value::String(s) if s.len() > MAX_ECHO => {
            let mut cut = 64;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            *s = format!("{}... ({} bytes, not shown)", &s[..cut], s.len());
        }
        Value::Array(a) => a.iter_mut().for_each(shorten),
        Value::Object(m) => m.values_mut().for_each(shorten),
        _ => {}
    }
}

/// `invocation.module_args`: every option (null when unset), masked under no_log.
pub fn module_args(spec: &Spec, params: &Map<String, Value>, no_log: bool) -> Value {
    let mut out = Map::new();
    for o in &spec.options {
        out.insert(
            o.name.to_string(),
            params.get(o.name).cloned().unwrap_or(Value::Null),
        );
    }
    // Keys that are not options (a rejected call) are still shown, masked alike.
    for (k, v) in params {
        if spec.options.iter().all(|o| o.name != k) {
            out.insert(k.clone(), v.clone());
        }
    }
    let secret = spec.no_log_paths();
    for (k, v) in out.iter_mut() {
        shorten(v);
        if no_log || secret.iter().any(|p| p == k) {
            mask(v);
        } else if let Value::Object(m) = v {
            for (sk, sv) in m.iter_mut() {
                if secret.iter().any(|p| *p == format!("{k}.{sk}")) {
                    mask(sv);
                }
            }
        }
    }
    Value::Object(out)
}

fn mask(v: &mut Value) {
    match v {
        Value::Null => {}
        Value::Object(m) => m.values_mut().for_each(mask),
        Value::Array(a) => a.iter_mut().for_each(mask),
        other => *other = Value::String(MASK.to_string()),
    }
}

pub(crate) fn remember_invocation(args: &Value, masker: &Masker) {
    if let Ok(mut g) = INVOCATION.lock() {
        *g = Some((args.clone(), masker.clone()));
    }
}

/// `s` with its first letter upper-cased (messages are sentences).
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// What a run that did not fail reports, from its plan.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub changed: bool,
    /// The steps' summaries joined with `; ` (the default message).
    pub summaries: String,
    pub msg: Option<String>,
    pub result: Map<String, Value>,
    pub diffs: Vec<Diff>,
    pub restart_required: Option<bool>,
}

fn default_msg(o: &Outcome, check: bool) -> String {
    if !o.changed {
        "already in the requested state".to_string()
    } else if check {
        format!("would {}", o.summaries)
    } else {
        capitalise(&o.summaries)
    }
}

pub fn success(o: &Outcome, args: &Value, ctx: &Ctx) -> Value {
    let mut r = o.result.clone();
    r.insert("changed".into(), json!(o.changed));
    r.insert("failed".into(), json!(false));
    r.insert(
        "msg".into(),
        json!(o
            .msg
            .clone()
            .unwrap_or_else(|| default_msg(o, ctx.check_mode()))),
    );
    r.insert("commands".into(), json!(ctx.commands));
    if let Some(rr) = o.restart_required {
        r.insert("restart_required".into(), json!(rr));
    }
    if ctx.flags.diff {
        let mut diffs: Vec<Value> = o.diffs.iter().map(Diff::to_json).collect();
        match diffs.len() {
            0 => {}
            1 => {
                r.insert("diff".into(), diffs.remove(0));
            }
            _ => {
                r.insert("diff".into(), Value::Array(diffs));
            }
        }
    }
    if !ctx.warnings.is_empty() {
        r.insert("warnings".into(), json!(ctx.warnings));
    }
    r.insert("invocation".into(), json!({ "module_args": args }));
    Value::Object(r)
}

pub fn failure(
    err: &Error,
    args: &Value,
    changed: bool,
    warnings: &[String],
    commands: &[Vec<String>],
) -> Value {
    let mut r = err.extra.clone();
    r.insert("changed".into(), json!(changed));
    r.insert("failed".into(), json!(true));
    r.insert("msg".into(), json!(err.msg));
    r.insert("error_kind".into(), json!(err.kind.as_str()));
    r.insert("commands".into(), json!(commands));
    if !warnings.is_empty() {
        r.insert("warnings".into(), json!(warnings));
    }
    r.insert("invocation".into(), json!({ "module_args": args }));
    Value::Object(r)
}

/// Print the result, once: a later call (a panic after printing) prints nothing.
pub fn emit(v: &Value) {
    if PRINTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// A panic anywhere still yields exactly one failure JSON and exit status 1, also with
/// `panic = "abort"` in the release profile (the hook runs before the abort).
pub fn install_panic_hook(module: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let (args, masker) = INVOCATION
            .try_lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_else(|| (json!({}), Masker::default()));
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let err = Error::bug(format!(
            "kvmnet module {module} crashed (a bug, please report it): {payload}{place}"
        ));
        let mut result = failure(&err, &args, false, &[], &[]);
        masker.apply(&mut result);
        emit(&result);
        std::process::exit(1);
    }));
}
