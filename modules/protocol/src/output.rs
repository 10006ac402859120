//! The one JSON object a module prints.

use crate::error::Error;
use crate::module::{Ctx, Plan};
use crate::spec::Spec;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static PRINTED: AtomicBool = AtomicBool::new(false);
static INVOCATION: Mutex<Option<Value>> = Mutex::new(None);

pub const MASK: &str = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";

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

pub(crate) fn remember_invocation(args: &Value) {
    if let Ok(mut g) = INVOCATION.lock() {
        *g = Some(args.clone());
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

fn default_msg(plan: &Plan, check: bool) -> String {
    if !plan.changed() {
        "already in the requested state".to_string()
    } else if check {
        format!("would {}", plan.summaries())
    } else {
        capitalise(&plan.summaries())
    }
}

pub fn success(plan: &Plan, args: &Value, ctx: &Ctx) -> Value {
    let mut r = Map::new();
    for (k, v) in &plan.result {
        r.insert(k.clone(), v.clone());
    }
    r.insert("changed".into(), json!(plan.changed()));
    r.insert("failed".into(), json!(false));
    r.insert(
        "msg".into(),
        json!(plan
            .msg
            .clone()
            .unwrap_or_else(|| default_msg(plan, ctx.check_mode()))),
    );
    r.insert("commands".into(), json!(ctx.commands));
    if let Some(rr) = plan.restart_required {
        r.insert("restart_required".into(), json!(rr));
    }
    if ctx.flags.diff {
        let diffs: Vec<Value> = plan.diffs.iter().map(|d| d.to_json()).collect();
        match diffs.len() {
            0 => {}
            1 => {
                r.insert(
                    "diff".into(),
                    diffs.into_iter().next().unwrap_or(Value::Null),
                );
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
        let args = INVOCATION
            .try_lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_else(|| json!({}));
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
        emit(&failure(&err, &args, false, &[], &[]));
        std::process::exit(1);
    }));
}
