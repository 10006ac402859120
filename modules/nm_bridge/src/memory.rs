//! What `port_profiles: disable` switched off, so that `state: absent` (or removing a
//! port) can give it back. NetworkManager's nmcli has no free-form field to hold it, so it
//! lives in one documented file per bridge: `/var/lib/kvmnet/nm_bridge/<bridge>.json`.
//! Read directly only when needed (never in a no-change run), written with `tee` (so the
//! write shows in `commands` and check mode).

use kvmnet_protocol::{Action, Ctx, Result};
use serde::{Deserialize, Serialize};

pub const DIR: &str = "/var/lib/kvmnet/nm_bridge";

pub fn path(bridge: &str) -> String {
    format!("{DIR}/{bridge}.json")
}

/// One profile the module switched off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Disabled {
    pub uuid: String,
    pub id: String,
    pub port: String,
    /// It was active on the port when switched off: activate it again on restore.
    pub was_active: bool,
    /// Its autoconnect was on (and was switched off).
    #[serde(default = "yes")]
    pub had_autoconnect: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    #[serde(default)]
    pub disabled: Vec<Disabled>,
}

impl Memory {
    pub fn read(ctx: &mut Ctx, bridge: &str) -> Result<Memory> {
        let Some(text) = ctx.read_file(&path(bridge)) else {
            return Ok(Memory::default()); // never written
        };
        Ok(serde_json::from_str(&text).unwrap_or_else(|_| {
            ctx.warn(format!(
                "{} is not valid JSON; the profiles it listed will not be restored",
                path(bridge)
            ));
            Memory::default()
        }))
    }

    /// Actions writing this memory (or removing the file when empty).
    pub fn save(&self, bridge: &str) -> Vec<Action> {
        if self.disabled.is_empty() {
            return vec![Action::new(
                format!("forget the profiles switched off for {bridge}"),
                ["rm", "-f", &path(bridge)],
            )];
        }
        let body = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        vec![
            Action::new(format!("create {DIR}"), ["mkdir", "-p", "-m", "0700", DIR]),
            Action::new(
                format!(
                    "remember the profiles switched off for {bridge} in {}",
                    path(bridge)
                ),
                ["tee", &path(bridge)],
            )
            .with_stdin(body),
        ]
    }
}
