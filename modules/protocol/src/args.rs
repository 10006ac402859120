//! The args file Ansible hands a binary module, split into `_ansible_*` flags and options.

use crate::error::{Error, Result};
use crate::spec::coerce_bool;
use serde_json::{Map, Value};

/// The `_ansible_*` keys this library understands; unknown ones are ignored because they
/// change between ansible-core versions.
#[derive(Debug, Clone, Default)]
pub struct AnsibleFlags {
    pub check_mode: bool,
    pub diff: bool,
    pub no_log: bool,
    pub verbosity: u64,
    pub debug: bool,
    pub module_name: Option<String>,
    pub version: Option<String>,
}

/// What the args file held.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub flags: AnsibleFlags,
    /// The task's options, `_ansible_*` keys removed.
    pub options: Map<String, Value>,
}

impl Invocation {
    /// Parse the JSON text of an args file. Accepts both the bare map binary modules get
    /// and the `{"ANSIBLE_MODULE_ARGS": {...}}` wrapper.
    pub fn parse(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::invalid(format!("the module's args file is not valid JSON: {e}"))
        })?;
        let mut map = match value {
            Value::Object(m) => m,
            _ => {
                return Err(Error::invalid(
                    "the module's args file must hold a JSON object",
                ))
            }
        };
        if let Some(Value::Object(inner)) = map.remove("ANSIBLE_MODULE_ARGS") {
            map = inner;
        }
        let mut inv = Invocation::default();
        for (k, v) in map {
            match k.strip_prefix("_ansible_") {
                None => {
                    inv.options.insert(k, v);
                }
                Some(flag) => {
                    let b = || coerce_bool(&v).unwrap_or(false);
                    match flag {
                        "check_mode" => inv.flags.check_mode = b(),
                        "diff" => inv.flags.diff = b(),
                        "no_log" => inv.flags.no_log = b(),
                        "debug" => inv.flags.debug = b(),
                        "verbosity" => {
                            inv.flags.verbosity = v
                                .as_u64()
                                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                                .unwrap_or(0)
                        }
                        "module_name" => inv.flags.module_name = v.as_str().map(str::to_string),
                        "version" => inv.flags.version = v.as_str().map(str::to_string),
                        _ => {}
                    }
                }
            }
        }
        Ok(inv)
    }

    /// Read the args file named by the module's only argument.
    pub fn from_path(path: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(format!("cannot read the module's args file {path}: {e}"))
        })?;
        Self::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_flags_and_ignores_unknown_ansible_keys() {
        let inv = Invocation::parse(
            r#"{"name":"br0","_ansible_check_mode":true,"_ansible_diff":"yes","_ansible_no_log":false,
                "_ansible_verbosity":3,"_ansible_module_name":"kvmnet.network.nm_bridge",
                "_ansible_version":"2.19.4","_ansible_some_future_key":{"x":1},"_ansible_tmpdir":"/tmp/x"}"#,
        )
        .unwrap();
        assert!(inv.flags.check_mode && inv.flags.diff && !inv.flags.no_log);
        assert_eq!(inv.flags.verbosity, 3);
        assert_eq!(
            inv.flags.module_name.as_deref(),
            Some("kvmnet.network.nm_bridge")
        );
        assert_eq!(inv.flags.version.as_deref(), Some("2.19.4"));
        assert_eq!(inv.options.len(), 1);
        assert_eq!(inv.options["name"], "br0");
    }

    #[test]
    fn accepts_wrapped_args_and_rejects_garbage() {
        let inv =
            Invocation::parse(r#"{"ANSIBLE_MODULE_ARGS":{"a":1,"_ansible_check_mode":true}}"#)
                .unwrap();
        assert!(inv.flags.check_mode);
        assert_eq!(inv.options["a"], 1);
        assert!(Invocation::parse("not json")
            .unwrap_err()
            .msg
            .contains("not valid JSON"));
        assert!(Invocation::parse("[1]")
            .unwrap_err()
            .msg
            .contains("JSON object"));
    }
}
