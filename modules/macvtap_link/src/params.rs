//! The task's options: their spec (the one declaration of every option), the typed
//! params and the checks that need no host.

use kvmnet_iproute::{check_ifname, normalize_mac, MacvlanMode};
use kvmnet_protocol::{Error, Opt, Result, Spec};
use serde::{Deserialize, Deserializer};

/// `state`: whether the link should exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

/// What `persistent` asks of NetworkManager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Omitted: the link through `ip link` only; profiles are neither read nor touched.
    Untouched,
    /// `true`: one NetworkManager profile holds the link.
    Profile,
    /// `false`: no profile; the link stays as a runtime link.
    NoProfile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    /// The parent NIC.
    pub link: Option<String>,
    /// `passthru` is normalised to passthrough by the spec.
    #[serde(default, deserialize_with = "mode")]
    pub mode: Option<MacvlanMode>,
    pub mac: Option<String>,
    pub persistent: Option<bool>,
    pub conn_name: Option<String>,
    pub up: bool,
    pub state: State,
}

fn mode<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<MacvlanMode>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| MacvlanMode::parse(&s)))
}

impl Params {
    pub fn persistence(&self) -> Persistence {
        match self.persistent {
            None => Persistence::Untouched,
            Some(true) => Persistence::Profile,
            Some(false) => Persistence::NoProfile,
        }
    }
    /// The `mac` option normalised (lower case, `:`), when given (validated already).
    pub fn mac(&self) -> Option<String> {
        self.mac.as_deref().and_then(normalize_mac)
    }
    /// The name a new profile gets.
    pub fn new_conn_name(&self) -> String {
        self.conn_name
            .clone()
            .unwrap_or_else(|| format!("macvlan-{}", self.name))
    }
}

pub fn spec() -> Spec {
    Spec::new()
        .opt(Opt::str("name").required())
        .opt(Opt::str("link").alias("parent"))
        .opt(
            Opt::str("mode")
                .choices(&["bridge", "private", "vepa", "passthrough"])
                .choice_alias("passthru", "passthrough"),
        )
        .opt(Opt::str("mac").alias("mac_address"))
        .opt(Opt::bool("persistent"))
        .opt(Opt::str("conn_name"))
        .opt(Opt::bool("up").default(true))
        .opt(
            Opt::str("state")
                .choices(&["present", "absent"])
                .default("present"),
        )
        .required_if("state", "present", &["link", "mode"])
}

/// Checks of the options alone (run before anything on the host is read).
pub fn validate(p: &Params) -> Result<()> {
    check_ifname("name", &p.name)?;
    if p.state == State::Absent {
        // Only the identity matters; the other options may stay in the task.
        return Ok(());
    }
    if let Some(l) = &p.link {
        check_ifname("link", l)?;
        if *l == p.name {
            return Err(Error::invalid(format!(
                "option 'link': a macvtap cannot be its own parent ('{l}')"
            )));
        }
    }
    if let Some(m) = &p.mac {
        check_mac(p, m)?;
    }
    if p.persistent == Some(true) && !p.up {
        return Err(Error::invalid(
            "option 'up': up: false does not fit persistent: true (NetworkManager brings the \
             link up whenever it activates the profile); use persistent: false for a link kept down",
        ));
    }
    if let Some(c) = &p.conn_name {
        if p.persistent != Some(true) {
            return Err(Error::invalid(
                "option 'conn_name' only applies with persistent: true (it names the NetworkManager profile)",
            ));
        }
        if c.trim().is_empty() {
            return Err(Error::invalid("option 'conn_name' is empty"));
        }
    }
    Ok(())
}

fn check_mac(p: &Params, m: &str) -> Result<()> {
    let n = normalize_mac(m).ok_or_else(|| {
        Error::invalid(format!(
            "option 'mac': '{m}' is not a MAC address (six hex octets, e.g. 52:54:00:12:34:56)"
        ))
    })?;
    let first = u8::from_str_radix(&n[0..2], 16).unwrap_or(0);
    if first & 1 == 1 || n == "00:00:00:00:00:00" {
        return Err(Error::invalid(format!(
            "option 'mac': '{m}' is a multicast or null address; a link needs a unicast one"
        )));
    }
    if p.mode.as_ref().is_some_and(MacvlanMode::is_passthrough) {
        return Err(Error::invalid(
            "option 'mac' does not fit mode passthrough: the link takes its parent's address \
             (setting one would change the parent NIC's address)",
        ));
    }
    Ok(())
}
