//! The task's options: `gather` (which parts of the host to report; all when omitted)
//! and `uri` (the libvirt connection).

use kvmnet_protocol::{Error, Opt, Result, Spec};
use serde::Deserialize;

/// A part of the host the module can report, each under its own key of the facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Bridges,
    Macvtaps,
    Networks,
    Guests,
}

impl Part {
    pub const ALL: [Part; 4] = [Part::Bridges, Part::Macvtaps, Part::Networks, Part::Guests];

    /// Its key in `ansible_facts.kvmnet_net` and its value of `gather`.
    pub fn key(self) -> &'static str {
        match self {
            Part::Bridges => "bridges",
            Part::Macvtaps => "macvtaps",
            Part::Networks => "networks",
            Part::Guests => "guests",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// None: every part, and a part whose service the host lacks is left out with a
    /// warning. Given: exactly these, and a service they need must be there.
    pub gather: Option<Vec<Part>>,
    pub uri: String,
}

impl Params {
    pub fn wants(&self, part: Part) -> bool {
        self.gather.as_ref().is_none_or(|g| g.contains(&part))
    }
    /// Whether the task named the parts (then a missing service is an error).
    pub fn explicit(&self) -> bool {
        self.gather.is_some()
    }
    /// The parts asked for, in the facts' order.
    pub fn parts(&self) -> Vec<Part> {
        Part::ALL.into_iter().filter(|p| self.wants(*p)).collect()
    }
    /// NetworkManager's profiles are read for these parts.
    pub fn needs_nm(&self) -> bool {
        self.wants(Part::Bridges) || self.wants(Part::Macvtaps)
    }
    /// The kernel's links are read for these parts (guests: their target devices, when
    /// the guests run here).
    pub fn needs_links(&self) -> bool {
        self.needs_nm() || (self.wants(Part::Guests) && self.libvirt_here())
    }
    /// Whether `uri` names this host's libvirt (no host part: `qemu:///system`), so that
    /// its networks and guests can be joined with this host's bridges and links.
    pub fn libvirt_here(&self) -> bool {
        self.uri
            .split_once("://")
            .is_some_and(|(_, rest)| rest.starts_with('/'))
    }
    /// libvirt is read for these parts (guests: their networks tell their method).
    pub fn needs_libvirt(&self) -> bool {
        self.wants(Part::Networks) || self.wants(Part::Guests)
    }
}

pub fn spec() -> Spec {
    Spec::new()
        .opt(Opt::list("gather").choices(&Part::ALL.map(Part::key)))
        .opt(Opt::str("uri").default("qemu:///system"))
}

pub fn validate(p: &Params) -> Result<()> {
    if p.gather.as_ref().is_some_and(|g| g.is_empty()) {
        return Err(Error::invalid(
            "option 'gather' is empty: name at least one of bridges, macvtaps, networks, guests (or leave it out for all)",
        ));
    }
    if p.uri.trim().is_empty() {
        return Err(Error::invalid("option 'uri' must not be empty"));
    }
    Ok(())
}
