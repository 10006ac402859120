//! The task's options: their spec (the one declaration of every option), the typed
//! params (enums for every choice) and the checks of the options alone.

use kvmnet_iproute::{check_ifname, normalize_mac, MacvlanMode};
use kvmnet_protocol::spec::coerce_bool;
use kvmnet_protocol::{Error, Opt, Result, Spec};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `type`: what the interface is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A libvirt network (`<source network=...>`).
    Network,
    /// A host bridge (`<source bridge=...>`).
    Bridge,
    /// A macvtap on a host NIC (`<source dev=... mode=...>`).
    Direct,
}

impl Kind {
    /// libvirt's spelling (the `type` attribute).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Bridge => "bridge",
            Kind::Direct => "direct",
        }
    }
}

/// `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

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
    pub kind: Option<Kind>,
    pub source: Option<String>,
    /// The spec has already turned `passthru` into `passthrough`.
    #[serde(default, deserialize_with = "macvlan_mode")]
    pub mode: Option<MacvlanMode>,
    pub model: Option<String>,
    /// `live` as given (its type is raw): `Err` holds a value that is neither `auto` nor
    /// a boolean, which [`validate`] refuses naming the option.
    #[serde(rename = "live", deserialize_with = "live_option")]
    live_given: std::result::Result<Live, Value>,
    pub state: State,
    pub uri: String,
}

fn macvlan_mode<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<MacvlanMode>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|m| MacvlanMode::parse(&m)))
}

fn live_option<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<std::result::Result<Live, Value>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match &v {
        Value::String(s) if s.trim().eq_ignore_ascii_case("auto") => Ok(Live::Auto),
        _ => match coerce_bool(&v) {
            Some(true) => Ok(Live::Must),
            Some(false) => Ok(Live::ConfigOnly),
            None => Err(v),
        },
    })
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

    /// The `live` option (every other value was refused by [`validate`]).
    pub fn live(&self) -> Live {
        *self.live_given.as_ref().unwrap_or(&Live::ConfigOnly)
    }

    pub fn absent(&self) -> bool {
        self.state == State::Absent
    }

    /// The mode as libvirt spells it in `<source mode=...>`.
    pub fn mode_name(&self) -> Option<String> {
        self.mode.as_ref().map(|m| m.name().to_string())
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
    if let Err(v) = &p.live_given {
        return Err(Error::invalid(format!(
            "option 'live': value {v} is not one of: auto, true (yes), false (no)"
        )));
    }
    if p.absent() {
        // Only the identity (domain + mac) matters for removal.
        return Ok(());
    }
    check_kind_and_mode(p)?;
    if let Some(s) = &p.source {
        check_source_name(p.kind, s)?;
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

/// `mode` belongs to type direct, which needs one.
fn check_kind_and_mode(p: &Params) -> Result<()> {
    match (p.kind, &p.mode) {
        (Some(Kind::Direct), None) => Err(Error::missing_option(
            "mode",
            "type 'direct' needs a macvtap mode: bridge, private, vepa or passthrough",
        )),
        (Some(t), Some(_)) if t != Kind::Direct => Err(Error::invalid(format!(
            "option 'mode' applies to type 'direct' only, not to type '{}'",
            t.name()
        ))),
        _ => Ok(()),
    }
}

/// A bridge or host device is an interface name; a network name anything without `/`.
fn check_source_name(kind: Option<Kind>, s: &str) -> Result<()> {
    match kind {
        Some(Kind::Bridge | Kind::Direct) => check_ifname("source", s),
        _ if s.trim().is_empty() || s.contains('/') => Err(Error::invalid(format!(
            "option 'source': '{s}' is not a valid network, bridge or device name"
        ))),
        _ => Ok(()),
    }
}
