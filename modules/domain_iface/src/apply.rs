//! The steps (one virsh command each) and how they run: the persistent step first, then
//! the live one. A live attach (hot-plug) sends the element libvirt just stored for the
//! MAC, read back through `virtxml::domain::reread`, so that the guest sees the device at
//! the same PCI address now and after a restart.
//!
//! Every name reaches virsh as the value of a named option (`--domain`, `--file`,
//! `--type`, `--mac`), never as a bare argument.

use crate::params::Params;
use crate::plan::{describe, Plan};
use kvmnet_protocol::{Command, Ctx, Result, Step};
use kvmnet_virtxml::domain;
use kvmnet_virtxml::interface::{self as iface, Facets};
use kvmnet_virtxml::Element;

/// One virsh command on one interface of the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub uri: String,
    pub domain: String,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `update-device --config`: the interface as it will be defined.
    UpdateConfig {
        from: Facets,
        to: Facets,
        xml: Element,
    },
    /// `update-device --live`: the running guest's interface as it will be.
    UpdateLive {
        from: Facets,
        to: Facets,
        xml: Element,
    },
    /// `attach-device --config`: a new interface in the definition.
    AttachConfig { to: Facets, xml: Element },
    /// `attach-device --live`: hot-plug. `xml` is the planned element; apply sends the
    /// one libvirt stored for the MAC when it has one (see the module header).
    AttachLive { to: Facets, xml: Element },
    /// `detach-interface --config`; `kind` is the interface's type attribute.
    DetachConfig { mac: String, kind: String },
    /// `detach-interface --live`.
    DetachLive { mac: String, kind: String },
}

impl Op {
    /// A step on the running guest (the others change the persistent definition).
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            Op::UpdateLive { .. } | Op::AttachLive { .. } | Op::DetachLive { .. }
        )
    }
}

impl Action {
    fn where_(&self) -> &'static str {
        if self.op.is_live() {
            "in the running guest"
        } else {
            "in the persistent definition"
        }
    }

    fn virsh(&self, args: &[&str]) -> Command {
        let mut v = vec!["virsh", "-c", self.uri.as_str()];
        v.extend_from_slice(args);
        Command::new(v)
    }

    /// `virsh update-device|attach-device --domain D --file /dev/stdin --config|--live`,
    /// `xml` on stdin.
    fn device_command(&self, verb: &str, xml: &Element) -> Command {
        let flag = if self.op.is_live() {
            "--live"
        } else {
            "--config"
        };
        self.virsh(&[verb, "--domain", &self.domain, "--file", "/dev/stdin", flag])
            .with_stdin(xml.to_xml())
    }
}

impl Step for Action {
    fn summary(&self) -> String {
        let (d, which) = (&self.domain, self.where_());
        match &self.op {
            Op::AttachConfig { to, .. } | Op::AttachLive { to, .. } => {
                format!(
                    "add interface {} ({}) to domain {d} {which}",
                    to.mac,
                    describe(to)
                )
            }
            Op::UpdateConfig { from, to, .. } | Op::UpdateLive { from, to, .. }
                if (&from.kind, &from.source, &from.mode) != (&to.kind, &to.source, &to.mode) =>
            {
                format!(
                    "point interface {} of domain {d} from {} to {} {which}",
                    to.mac,
                    describe(from),
                    describe(to)
                )
            }
            Op::UpdateConfig { to, .. } | Op::UpdateLive { to, .. } => format!(
                "set the model of interface {} of domain {d} to {} {which}",
                to.mac,
                to.model.as_deref().unwrap_or("default")
            ),
            Op::DetachConfig { mac, .. } => {
                format!("remove interface {mac} from the persistent definition of domain {d}")
            }
            Op::DetachLive { mac, .. } => {
                format!("remove interface {mac} from the running guest {d}")
            }
        }
    }

    fn command(&self) -> Option<Command> {
        Some(match &self.op {
            Op::UpdateConfig { xml, .. } | Op::UpdateLive { xml, .. } => {
                self.device_command("update-device", xml)
            }
            Op::AttachConfig { xml, .. } | Op::AttachLive { xml, .. } => {
                self.device_command("attach-device", xml)
            }
            Op::DetachConfig { mac, kind } | Op::DetachLive { mac, kind } => {
                let flag = if self.op.is_live() {
                    "--live"
                } else {
                    "--config"
                };
                self.virsh(&[
                    "detach-interface",
                    "--domain",
                    &self.domain,
                    "--type",
                    kind,
                    "--mac",
                    mac,
                    flag,
                ])
            }
        })
    }
}

/// Run the steps in order; a live attach first reads back what libvirt stored.
pub fn apply(ctx: &mut Ctx, p: &Params, plan: &Plan) -> Result<()> {
    for a in &plan.actions {
        match &a.op {
            Op::AttachLive { to, xml } => {
                let (persistent, _) = domain::reread(ctx, &p.uri, &p.domain)?;
                let stored = iface::find(&persistent, &to.mac).unwrap_or(xml);
                let command = a.device_command("attach-device", stored);
                ctx.run_step(a, &command, |_| false)?;
            }
            _ => {
                ctx.run_planned(a)?;
            }
        }
    }
    Ok(())
}
