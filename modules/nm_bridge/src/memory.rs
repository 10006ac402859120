//! What `port_profiles: disable` switched off, so that `state: absent` (or removing a
//! port) can give it back. NetworkManager's nmcli has no free-form field to hold it, so it
//! lives in one documented file per bridge: `/var/lib/kvmnet/nm_bridge/<bridge>.json`.
//! Read directly by current.rs (a file read starts no process); written by the plan's
//! steps with `mkdir`, `tee` and `rm` (so the write shows in `commands` and check mode).

use kvmnet_protocol::Ctx;
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

/// The memory file as read: its content (empty when never written), and whether it held
/// something that is not this format (then nothing it listed can be given back).
#[derive(Debug, Clone, Default)]
pub struct Remembered {
    pub memory: Memory,
    pub unreadable: bool,
}

impl Remembered {
    pub fn read(ctx: &mut Ctx, bridge: &str) -> Remembered {
        let Some(text) = ctx.read_file(&path(bridge)) else {
            return Remembered::default(); // never written
        };
        match serde_json::from_str(&text) {
            Ok(memory) => Remembered {
                memory,
                unreadable: false,
            },
            Err(_) => Remembered {
                memory: Memory::default(),
                unreadable: true,
            },
        }
    }

    /// The warning a plan that uses an unreadable memory gives.
    pub fn warning(&self, bridge: &str) -> Option<String> {
        self.unreadable.then(|| {
            format!(
                "{} is not valid JSON; the profiles it listed will not be restored",
                path(bridge)
            )
        })
    }
}

impl Memory {
    /// The file's text.
    pub fn body(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}
