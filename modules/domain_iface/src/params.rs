//! The task's options, their spec and the checks of the options alone.

use kvmnet_iproute::{check_ifname, normalize_mac};
use kvmnet_protocol::spec::coerce_bool;
use kvmnet_protocol::{Error, Opt, Result, Spec};
use serde::Deserialize;
use serde_json::Value;

/// `live`: auto, or a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Also change the running guest when libvirt can; otherwise report restart_required.
    Auto,
    /// The running guest must change too; fail before changing anything if it cannot.
    Must,
    /// Persistent definition only.
    ConfigOnly,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub domain: String,
    pub mac: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub mode: Option<String>,
    pub model: Option<String>,
    pub live: Value,
    pub state: String,
    pub uri: String,
}

pub fn spec() -> Spec {
    Spec::new()
        .opt(Opt::str("domain").required().alias("name").alias("guest"))
        .opt(Opt::str("mac").alias("mac_address"))
        .opt(Opt::str("type").choices(&["network", "bridge", "direct"]))
        .opt(Opt::str("source"))
        .opt(
            Opt::str("mode")
                .choices(&["bridge", "private", "vepa", "passthrough"])
                .choice_alias("passthru", "passthrough"),
        )
        .opt(Opt::str("model"))
        .opt(Opt::raw("live").default("auto"))
        .opt(
            Opt::str("state")
                .choices(&["present", "absent"])
                .default("present"),
        )
        .opt(Opt::str("uri").default("qemu:///system"))
        .required_if("state", "absent", &["mac"])
}

impl Params {
    /// The MAC, normalised (lower case, two digits per octet).
    pub fn mac(&self) -> Option<String> {
        self.mac.as_deref().and_then(normalize_mac)
    }

    pub fn live(&self) -> Live {
        match &self.live {
            Value::String(s) if s.trim().eq_ignore_ascii_case("auto") => Live::Auto,
            v => match coerce_bool(v) {
                Some(true) => Live::Must,
                _ => Live::ConfigOnly,
            },
        }
    }

    pub fn absent(&self) -> bool {
        self.state == "absent"
    }
}

/// Checks of the options alone, before anything is read from the host.
pub fn validate(p: &Params) -> Result<()> {
    if p.domain.trim().is_empty() {
        return Err(Error::invalid("option 'domain' must not be empty"));
    }
    if let Some(m) = &p.mac {
        if normalize_mac(m).is_none() {
            return Err(Error::invalid(format!(
                "option 'mac': '{m}' is not a MAC address (six hex octets such as 52:54:00:6b:3c:58)"
            )));
        }
    }
    let live_ok = match &p.live {
        Value::String(s) if s.trim().eq_ignore_ascii_case("auto") => true,
        v => coerce_bool(v).is_some(),
    };
    if !live_ok {
        return Err(Error::invalid(format!(
            "option 'live': value {} is not one of: auto, true (yes), false (no)",
            p.live
        )));
    }
    if p.absent() {
        // Only the identity (domain + mac) matters for removal.
        return Ok(());
    }
    match (p.kind.as_deref(), &p.mode) {
        (Some("direct"), None) => {
            return Err(Error::missing_option(
                "mode",
                "type 'direct' needs a macvtap mode: bridge, private, vepa or passthrough",
            ))
        }
        (Some(t), Some(_)) if t != "direct" => {
            return Err(Error::invalid(format!(
                "option 'mode' applies to type 'direct' only, not to type '{t}'"
            )))
        }
        _ => {}
    }
    if let Some(s) = &p.source {
        match p.kind.as_deref() {
            Some("bridge") | Some("direct") => check_ifname("source", s)?,
            _ => {
                if s.trim().is_empty() || s.contains('/') {
                    return Err(Error::invalid(format!(
                        "option 'source': '{s}' is not a valid network, bridge or device name"
                    )));
                }
            }
        }
    }
    if let Some(m) = &p.model {
        if m.is_empty()
            || !m
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::invalid(format!(
                "option 'model': '{m}' is not a device model name (such as virtio, e1000e, rtl8139)"
            )));
        }
    }
    Ok(())
}
