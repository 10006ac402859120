//! Declarative option specs, validated the way Ansible's Python modules do it, so every
//! kvmnet module gets the same aliases, coercions and error messages.
//!
//! [`Spec::validate`] turns the raw task options into a canonical JSON map: aliases
//! resolved to the option's name, values coerced (`"yes"` → `true`, `"1500"` → `1500`,
//! `"a,b"` → `["a","b"]`), choices checked and their aliases normalised, defaults added.
//! Omitted options stay absent (`null` means omitted, as in Ansible), so typed params use
//! `Option<T>` for "leave as it is".

use crate::error::{Error, Result};
use serde_json::{Map, Value};

#[derive(Clone, Debug)]
pub enum Kind {
    Str,
    Bool,
    Int,
    /// Anything JSON; the module checks it.
    Raw,
    List(Box<Kind>),
    Dict(Box<Spec>),
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Str => "a string".into(),
            Kind::Bool => "a boolean (yes/no, true/false, on/off, 1/0)".into(),
            Kind::Int => "an integer".into(),
            Kind::Raw => "any value".into(),
            Kind::List(e) => format!("a list of {}", e.describe().trim_start_matches("a ")),
            Kind::Dict(_) => "a dictionary".into(),
        }
    }
}

/// One option of a module.
#[derive(Clone, Debug)]
pub struct Opt {
    pub name: &'static str,
    pub kind: Kind,
    pub aliases: Vec<&'static str>,
    /// Allowed values (for strings, or the elements of a list of strings).
    pub choices: Vec<&'static str>,
    /// Accepted spellings normalised to a choice, e.g. `passthru` → `passthrough`.
    pub choice_aliases: Vec<(&'static str, &'static str)>,
    pub required: bool,
    pub default: Option<Value>,
    /// Never echoed: masked in `invocation.module_args`.
    pub no_log: bool,
    /// Inclusive bounds of an integer option.
    pub range: Option<(i64, i64)>,
    /// Free text (a document such as libvirt XML): may hold line breaks and tabs, any
    /// script, and up to [`MAX_TEXT`] bytes. Other strings are names or words: no control
    /// characters, at most [`MAX_STR`] bytes.
    pub text: bool,
}

/// The longest name or word option (bytes).
pub const MAX_STR: usize = 1024;
/// The longest free-text option (bytes).
pub const MAX_TEXT: usize = 256 * 1024;
/// The most elements a list option may have.
pub const MAX_ITEMS: usize = 1024;

impl Opt {
    fn new(name: &'static str, kind: Kind) -> Self {
        Opt {
            name,
            kind,
            aliases: Vec::new(),
            choices: Vec::new(),
            choice_aliases: Vec::new(),
            required: false,
            default: None,
            no_log: false,
            range: None,
            text: false,
        }
    }
    pub fn str(name: &'static str) -> Self {
        Self::new(name, Kind::Str)
    }
    pub fn bool(name: &'static str) -> Self {
        Self::new(name, Kind::Bool)
    }
    pub fn int(name: &'static str) -> Self {
        Self::new(name, Kind::Int)
    }
    pub fn raw(name: &'static str) -> Self {
        Self::new(name, Kind::Raw)
    }
    /// A list of strings (a comma-separated string is split).
    pub fn list(name: &'static str) -> Self {
        Self::new(name, Kind::List(Box::new(Kind::Str)))
    }
    pub fn list_of(name: &'static str, elements: Kind) -> Self {
        Self::new(name, Kind::List(Box::new(elements)))
    }
    pub fn dict(name: &'static str, spec: Spec) -> Self {
        Self::new(name, Kind::Dict(Box::new(spec)))
    }
    pub fn alias(mut self, alias: &'static str) -> Self {
        self.aliases.push(alias);
        self
    }
    pub fn choices(mut self, choices: &[&'static str]) -> Self {
        self.choices = choices.to_vec();
        self
    }
    pub fn choice_alias(mut self, from: &'static str, to: &'static str) -> Self {
        self.choice_aliases.push((from, to));
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }
    pub fn no_log(mut self) -> Self {
        self.no_log = true;
        self
    }
    /// Accept only integers from `min` to `max` (inclusive).
    pub fn range(mut self, min: i64, max: i64) -> Self {
        self.range = Some((min, max));
        self
    }
    /// A free-text option (see [`Opt::text`](Opt#structfield.text)).
    pub fn text(mut self) -> Self {
        self.text = true;
        self
    }
}

/// The options of a module (or of a dictionary option) and the rules between them.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub options: Vec<Opt>,
    /// (option, value, options required when option == value)
    pub required_if: Vec<(&'static str, &'static str, Vec<&'static str>)>,
    pub mutually_exclusive: Vec<Vec<&'static str>>,
    /// (option, options that may only be given together with it)
    pub required_by: Vec<(&'static str, Vec<&'static str>)>,
}

/// What validation produced: the canonical options and the warnings it raised.
#[derive(Debug, Default)]
pub struct Validated {
    pub params: Map<String, Value>,
    pub warnings: Vec<String>,
}

const TRUE: &[&str] = &["y", "yes", "on", "1", "true", "t"];
const FALSE: &[&str] = &["n", "no", "off", "0", "false", "f"];

/// Ansible's boolean coercion.
pub fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => {
            let l = s.trim().to_ascii_lowercase();
            if TRUE.contains(&l.as_str()) {
                Some(true)
            } else if FALSE.contains(&l.as_str()) {
                Some(false)
            } else {
                None
            }
        }
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

impl Spec {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn opt(mut self, o: Opt) -> Self {
        self.options.push(o);
        self
    }
    pub fn required_if(
        mut self,
        key: &'static str,
        value: &'static str,
        opts: &[&'static str],
    ) -> Self {
        self.required_if.push((key, value, opts.to_vec()));
        self
    }
    pub fn mutually_exclusive(mut self, opts: &[&'static str]) -> Self {
        self.mutually_exclusive.push(opts.to_vec());
        self
    }
    pub fn required_by(mut self, key: &'static str, opts: &[&'static str]) -> Self {
        self.required_by.push((key, opts.to_vec()));
        self
    }

    fn find(&self, key: &str) -> Option<&Opt> {
        self.options
            .iter()
            .find(|o| o.name == key || o.aliases.contains(&key))
    }

    fn supported_list(&self) -> String {
        let mut names: Vec<String> = self
            .options
            .iter()
            .map(|o| {
                if o.aliases.is_empty() {
                    o.name.to_string()
                } else {
                    format!("{} (aliases: {})", o.name, o.aliases.join(", "))
                }
            })
            .collect();
        names.sort();
        names.join(", ")
    }

    /// Validate the task's options (without `_ansible_*` keys) for module `module`.
    pub fn validate(&self, raw: &Map<String, Value>, module: &str) -> Result<Validated> {
        let mut warnings = Vec::new();
        let params = self.validate_at(raw, module, "", &mut warnings)?;
        Ok(Validated { params, warnings })
    }

    fn validate_at(
        &self,
        raw: &Map<String, Value>,
        module: &str,
        prefix: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Map<String, Value>> {
        self.refuse_unknown(raw, module, prefix)?;
        let mut out = Map::new();
        for opt in &self.options {
            let path = format!("{prefix}{}", opt.name);
            let value = match (given(opt, raw, &path)?, &opt.default) {
                (Some(v), _) => {
                    let v = coerce(&opt.kind, v, &path, module, warnings)?;
                    check_bounds(opt, &v, &path)?;
                    v
                }
                (None, Some(d)) => d.clone(),
                (None, None) if opt.required => {
                    return Err(Error::invalid(format!("missing required option: {path}")))
                }
                (None, None) => continue,
            };
            out.insert(opt.name.to_string(), check_choices(opt, value, &path)?);
        }
        self.check_relations(&out, prefix)?;
        Ok(out)
    }

    fn refuse_unknown(&self, raw: &Map<String, Value>, module: &str, prefix: &str) -> Result<()> {
        let unknown: Vec<String> = raw
            .keys()
            .filter(|k| self.find(k).is_none())
            .map(|k| format!("{prefix}{k}"))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "Unsupported parameters for ({module}) module: {}. Supported parameters include: {}.",
            unknown.join(", "),
            self.supported_list()
        )))
    }

    /// mutually_exclusive, required_if and required_by on the validated options.
    fn check_relations(&self, out: &Map<String, Value>, prefix: &str) -> Result<()> {
        let dotted = |keys: &mut dyn Iterator<Item = &&str>| -> Vec<String> {
            keys.map(|k| format!("{prefix}{k}")).collect()
        };
        for group in &self.mutually_exclusive {
            let present = dotted(&mut group.iter().filter(|k| out.contains_key(**k)));
            if present.len() > 1 {
                return Err(Error::invalid(format!(
                    "options are mutually exclusive: {}",
                    present.join(", ")
                )));
            }
        }
        for (key, value, needed) in &self.required_if {
            let matches = match out.get(*key) {
                Some(Value::String(s)) => s == value,
                Some(Value::Bool(b)) => coerce_bool(&Value::String(value.to_string())) == Some(*b),
                _ => false,
            };
            let missing = dotted(&mut needed.iter().filter(|k| !out.contains_key(**k)));
            if matches && !missing.is_empty() {
                return Err(Error::invalid(format!(
                    "{prefix}{key} is {value} but the following option is missing: {}",
                    missing.join(", ")
                )));
            }
        }
        for (key, needed) in &self.required_by {
            let missing = dotted(&mut needed.iter().filter(|k| !out.contains_key(**k)));
            if out.contains_key(*key) && !missing.is_empty() {
                return Err(Error::invalid(format!(
                    "option '{prefix}{key}' requires: {}",
                    missing.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The options in Ansible's argument_spec form (what `MODULE --spec` prints): type,
    /// required, default, choices, aliases, elements, sub-options, no_log.
    pub fn to_argument_spec(&self) -> Value {
        let mut out = Map::new();
        for o in &self.options {
            let mut m = Map::new();
            let (ty, elements) = match &o.kind {
                Kind::Str => ("str", None),
                Kind::Bool => ("bool", None),
                Kind::Int => ("int", None),
                Kind::Raw => ("raw", None),
                Kind::Dict(_) => ("dict", None),
                Kind::List(e) => (
                    "list",
                    Some(match e.as_ref() {
                        Kind::Str => "str",
                        Kind::Bool => "bool",
                        Kind::Int => "int",
                        Kind::Dict(_) => "dict",
                        Kind::List(_) => "list",
                        Kind::Raw => "raw",
                    }),
                ),
            };
            m.insert("type".into(), Value::from(ty));
            if let Some(e) = elements {
                m.insert("elements".into(), Value::from(e));
            }
            m.insert("required".into(), Value::Bool(o.required));
            if let Some(d) = &o.default {
                m.insert("default".into(), d.clone());
            }
            if !o.choices.is_empty() {
                m.insert("choices".into(), Value::from(o.choices.clone()));
            }
            if !o.aliases.is_empty() {
                m.insert("aliases".into(), Value::from(o.aliases.clone()));
            }
            if o.no_log {
                m.insert("no_log".into(), Value::Bool(true));
            }
            let sub = match &o.kind {
                Kind::Dict(s) => Some(s),
                Kind::List(e) => match e.as_ref() {
                    Kind::Dict(s) => Some(s),
                    _ => None,
                },
                _ => None,
            };
            if let Some(s) = sub {
                m.insert("options".into(), s.to_argument_spec());
            }
            out.insert(o.name.to_string(), Value::Object(m));
        }
        Value::Object(out)
    }

    /// The first value (dotted path, value) of a name or word option that holds a
    /// character outside ASCII; free-text options are not looked at.
    pub fn non_ascii(&self, params: &Map<String, Value>) -> Option<(String, String)> {
        self.non_ascii_at(params, "")
    }

    fn non_ascii_at(&self, params: &Map<String, Value>, prefix: &str) -> Option<(String, String)> {
        for o in &self.options {
            let Some(v) = params.get(o.name) else {
                continue;
            };
            let path = format!("{prefix}{}", o.name);
            let found = match (&o.kind, v) {
                (Kind::Dict(s), Value::Object(m)) => s.non_ascii_at(m, &format!("{path}.")),
                _ if o.text => None,
                (_, Value::String(s)) if !s.is_ascii() => Some((path, s.clone())),
                (_, Value::Array(items)) => items.iter().enumerate().find_map(|(i, x)| {
                    x.as_str()
                        .filter(|s| !s.is_ascii())
                        .map(|s| (format!("{path}[{i}]"), s.to_string()))
                }),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Names (dotted for sub-options) whose values are never echoed.
    pub fn no_log_paths(&self) -> Vec<String> {
        let mut v = Vec::new();
        for o in &self.options {
            if o.no_log {
                v.push(o.name.to_string());
            }
            if let Kind::Dict(s) = &o.kind {
                v.extend(
                    s.no_log_paths()
                        .into_iter()
                        .map(|p| format!("{}.{p}", o.name)),
                );
            }
        }
        v
    }
}

/// The value given under the option's name or any alias (null means omitted); the same
/// option given twice with different values is an error.
fn given<'a>(opt: &Opt, raw: &'a Map<String, Value>, path: &str) -> Result<Option<&'a Value>> {
    let mut found: Option<(&str, &Value)> = None;
    for key in std::iter::once(&opt.name).chain(opt.aliases.iter()) {
        let Some(v) = raw.get(*key).filter(|v| !v.is_null()) else {
            continue;
        };
        match found {
            Some((first, fv)) if fv != v => {
                return Err(Error::invalid(format!(
                "option '{path}' is given twice with different values (as '{first}' and '{key}')"
            )))
            }
            Some(_) => {}
            None => found = Some((key, v)),
        }
    }
    Ok(found.map(|(_, v)| v))
}

/// Ranges, lengths and characters, checked on the coerced value so that the message
/// names the option before anything reaches a tool.
fn check_bounds(opt: &Opt, v: &Value, path: &str) -> Result<()> {
    match v {
        Value::Array(items) => {
            if items.len() > MAX_ITEMS {
                return Err(Error::invalid(format!(
                    "option '{path}' has {} elements; at most {MAX_ITEMS}",
                    items.len()
                )));
            }
            for (i, item) in items.iter().enumerate() {
                check_bounds(opt, item, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Value::Number(n) => match (opt.range, n.as_i64()) {
            (Some((lo, hi)), Some(x)) if x < lo || x > hi => Err(Error::invalid(format!(
                "option '{path}': {x} is out of range ({lo} to {hi})"
            ))),
            _ => Ok(()),
        },
        Value::String(s) => check_string(s, path, opt.text),
        _ => Ok(()),
    }
}

/// A string option's length and characters: names and words hold no control characters
/// (a NUL or a line break would reach a tool as part of a name); text may hold line
/// breaks and tabs but never NUL.
pub fn check_string(s: &str, path: &str, text: bool) -> Result<()> {
    let max = if text { MAX_TEXT } else { MAX_STR };
    if s.len() > max {
        return Err(Error::invalid(format!(
            "option '{path}' is {} bytes long; at most {max}",
            s.len()
        )));
    }
    let bad = s
        .char_indices()
        .find(|(_, c)| c.is_control() && !(text && matches!(c, '\n' | '\r' | '\t')));
    if let Some((at, c)) = bad {
        return Err(Error::invalid(format!(
            "option '{path}' contains the control character U+{:04X} at byte {at}; {}",
            c as u32,
            if text {
                "text options may hold line breaks and tabs, no other control characters"
            } else {
                "names hold no control characters"
            }
        )));
    }
    Ok(())
}

fn check_choices(opt: &Opt, value: Value, path: &str) -> Result<Value> {
    if opt.choices.is_empty() {
        return Ok(value);
    }
    let one = |v: Value| -> Result<Value> {
        let s = match &v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some((_, to)) = opt.choice_aliases.iter().find(|(from, _)| *from == s) {
            return Ok(Value::String(to.to_string()));
        }
        if opt.choices.contains(&s.as_str()) {
            return Ok(Value::String(s));
        }
        let mut accepted = opt.choices.join(", ");
        for (from, to) in &opt.choice_aliases {
            accepted.push_str(&format!("; {from} is accepted for {to}"));
        }
        Err(Error::invalid(format!(
            "option '{path}': value '{s}' is not one of: {accepted}"
        )))
    };
    match value {
        Value::Array(items) => Ok(Value::Array(
            items.into_iter().map(one).collect::<Result<_>>()?,
        )),
        v => one(v),
    }
}

fn coerce(
    kind: &Kind,
    v: &Value,
    path: &str,
    module: &str,
    warnings: &mut Vec<String>,
) -> Result<Value> {
    let bad = || {
        Error::invalid(format!(
            "option '{path}' must be {}, got {} {}",
            kind.describe(),
            type_name(v),
            show(v)
        ))
    };
    Ok(match kind {
        Kind::Raw => v.clone(),
        Kind::Bool => Value::Bool(coerce_bool(v).ok_or_else(bad)?),
        Kind::Int => match v {
            Value::Number(n) if n.is_i64() => v.clone(),
            Value::Number(n) if n.is_u64() => {
                return Err(Error::invalid(format!(
                    "option '{path}': {n} is too large for an integer option"
                )))
            }
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                _ => return Err(bad()),
            },
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(i) => Value::from(i),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
                    ) =>
                {
                    return Err(Error::invalid(format!(
                        "option '{path}': {} is too large for an integer option",
                        s.trim()
                    )))
                }
                Err(_) => return Err(bad()),
            },
            _ => return Err(bad()),
        },
        Kind::Str => match v {
            Value::String(_) => v.clone(),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => {
                let s = if *b { "True" } else { "False" };
                warnings.push(format!(
                    "The value {s} (type bool) in option '{path}' was converted to '{s}' (type string). If this does not look like what you expect, quote the entire value."
                ));
                Value::String(s.to_string())
            }
            _ => return Err(bad()),
        },
        Kind::List(elem) => coerce_list(elem, v, path, module, warnings).ok_or_else(bad)??,
        Kind::Dict(spec) => {
            let map = match v {
                Value::Object(m) => m.clone(),
                Value::String(s) => parse_dict_string(s).ok_or_else(bad)?,
                _ => return Err(bad()),
            };
            Value::Object(spec.validate_at(&map, module, &format!("{path}."), warnings)?)
        }
    })
}

/// A list option: a list, or a comma-separated string, or one scalar; each element
/// coerced. `None` when the value cannot be a list at all.
fn coerce_list(
    elem: &Kind,
    v: &Value,
    path: &str,
    module: &str,
    warnings: &mut Vec<String>,
) -> Option<Result<Value>> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        Value::String(s) if s.trim().is_empty() => Vec::new(),
        Value::String(s) => s
            .split(',')
            .map(|p| Value::String(p.trim().to_string()))
            .collect(),
        Value::Number(_) | Value::Bool(_) => vec![v.clone()],
        _ => return None,
    };
    let coerced: Result<Vec<Value>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| coerce(elem, item, &format!("{path}[{i}]"), module, warnings))
        .collect();
    Some(coerced.map(Value::Array))
}

/// A dict given as a string: JSON, or Ansible's `k=v, k2=v2` form.
fn parse_dict_string(s: &str) -> Option<Map<String, Value>> {
    let t = s.trim();
    if t.starts_with('{') {
        return serde_json::from_str::<Map<String, Value>>(t).ok();
    }
    let mut m = Map::new();
    for part in t.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
        let (k, v) = part.split_once('=')?;
        m.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Spec {
        Spec::new()
            .opt(Opt::str("name").required())
            .opt(Opt::str("mac").alias("mac_address"))
            .opt(Opt::bool("stp"))
            .opt(Opt::int("mtu"))
            .opt(Opt::list("ports"))
            .opt(
                Opt::str("mode")
                    .choices(&["bridge", "private", "vepa", "passthrough"])
                    .choice_alias("passthru", "passthrough"),
            )
            .opt(Opt::str("link").alias("parent"))
            .opt(
                Opt::str("state")
                    .choices(&["present", "absent"])
                    .default("present"),
            )
            .opt(Opt::dict(
                "ipv4",
                Spec::new()
                    .opt(Opt::str("method").choices(&["auto", "manual", "disabled"]))
                    .opt(Opt::list("addresses"))
                    .opt(Opt::str("gateway"))
                    .required_by("gateway", &["addresses"]),
            ))
            .opt(Opt::str("xml"))
            .opt(Opt::str("forward"))
            .mutually_exclusive(&["xml", "forward"])
            .required_if("state", "present", &["link"])
    }

    fn v(j: Value) -> Result<Validated> {
        spec().validate(j.as_object().unwrap(), "demo")
    }

    #[test]
    fn coerces_like_ansible() {
        let r = v(json!({"name": "br0", "stp": "no", "mtu": "1500", "ports": "ens32, ens33", "link": "x"})).unwrap();
        assert_eq!(r.params["stp"], json!(false));
        assert_eq!(r.params["mtu"], json!(1500));
        assert_eq!(r.params["ports"], json!(["ens32", "ens33"]));
        assert_eq!(r.params["state"], json!("present"));
        for (s, b) in [
            ("YES", true),
            ("On", true),
            ("1", true),
            ("y", true),
            ("False", false),
            ("off", false),
            ("0", false),
        ] {
            let r = v(json!({"name": "a", "stp": s, "link": "x"})).unwrap();
            assert_eq!(r.params["stp"], json!(b), "{s}");
        }
        let r = v(json!({"name": "a", "stp": 1, "link": "x", "ports": ""})).unwrap();
        assert_eq!(r.params["stp"], json!(true));
        assert_eq!(
            r.params["ports"],
            json!([]),
            "empty string is an empty list"
        );
    }

    #[test]
    fn aliases_resolve_to_the_name() {
        let r =
            v(json!({"name": "a", "mac_address": "52:54:00:00:00:01", "parent": "ens32"})).unwrap();
        assert_eq!(r.params["mac"], json!("52:54:00:00:00:01"));
        assert_eq!(r.params["link"], json!("ens32"));
        assert!(!r.params.contains_key("mac_address"));
        let e = v(json!({"name": "a", "mac": "1", "mac_address": "2", "link": "x"})).unwrap_err();
        assert!(e.msg.contains("given twice"), "{}", e.msg);
    }

    #[test]
    fn unknown_option_names_it_and_lists_supported() {
        let e = v(json!({"name": "a", "bogus": 1, "link": "x"})).unwrap_err();
        assert!(
            e.msg
                .contains("Unsupported parameters for (demo) module: bogus."),
            "{}",
            e.msg
        );
        assert!(e.msg.contains("mac (aliases: mac_address)"), "{}", e.msg);
        let e = v(json!({"name": "a", "link": "x", "ipv4": {"methd": "auto"}})).unwrap_err();
        assert!(e.msg.contains("ipv4.methd"), "{}", e.msg);
    }

    #[test]
    fn wrong_types_name_option_and_type() {
        let e = v(json!({"name": "a", "stp": "maybe", "link": "x"})).unwrap_err();
        assert_eq!(
            e.msg,
            "option 'stp' must be a boolean (yes/no, true/false, on/off, 1/0), got string 'maybe'"
        );
        let e = v(json!({"name": "a", "mtu": "15x0", "link": "x"})).unwrap_err();
        assert!(
            e.msg.starts_with("option 'mtu' must be an integer"),
            "{}",
            e.msg
        );
        let e = v(json!({"name": ["a"], "link": "x"})).unwrap_err();
        assert!(
            e.msg
                .starts_with("option 'name' must be a string, got list"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn choices_and_their_aliases() {
        let r = v(json!({"name": "a", "mode": "passthru", "link": "x"})).unwrap();
        assert_eq!(r.params["mode"], json!("passthrough"));
        let e = v(json!({"name": "a", "mode": "bogus", "link": "x"})).unwrap_err();
        assert!(
            e.msg
                .contains("option 'mode': value 'bogus' is not one of: bridge, private"),
            "{}",
            e.msg
        );
        let e = v(json!({"name": "a", "link": "x", "ipv4": {"method": "dhcp"}})).unwrap_err();
        assert!(e.msg.contains("option 'ipv4.method'"), "{}", e.msg);
    }

    #[test]
    fn required_and_state_dependent_required() {
        let e = v(json!({"link": "x"})).unwrap_err();
        assert_eq!(e.msg, "missing required option: name");
        let e = v(json!({"name": "a"})).unwrap_err();
        assert_eq!(
            e.msg,
            "state is present but the following option is missing: link"
        );
        assert!(v(json!({"name": "a", "state": "absent"})).is_ok());
        // null means omitted
        assert!(v(json!({"name": "a", "state": "absent", "link": null})).is_ok());
    }

    #[test]
    fn exclusive_and_required_by() {
        let e = v(json!({"name": "a", "link": "x", "xml": "<n/>", "forward": "nat"})).unwrap_err();
        assert_eq!(e.msg, "options are mutually exclusive: xml, forward");
        let e = v(json!({"name": "a", "link": "x", "ipv4": {"gateway": "192.0.2.1"}})).unwrap_err();
        assert_eq!(e.msg, "option 'ipv4.gateway' requires: ipv4.addresses");
    }

    #[test]
    fn dict_from_string_and_bool_to_string_warns() {
        let r = v(json!({"name": true, "link": "x", "ipv4": "method=manual, gateway=1.2.3.4, addresses=1.2.3.5/24"})).unwrap();
        assert_eq!(r.params["name"], json!("True"));
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.params["ipv4"]["method"], json!("manual"));
        assert_eq!(r.params["ipv4"]["addresses"], json!(["1.2.3.5/24"]));
    }
}
