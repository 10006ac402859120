//! What `port_profiles: disable` switched off, so that `state: absent` (or removing a
//! port) can give it back, and what a bridge inherited (`inherit: true`) from the profile
//! of the port it took over, so that `state: absent` can give the port a profile carrying
//! it when that profile was deleted (`port_profiles: delete`). NetworkManager's nmcli has no free-form field to hold it, so it
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

/// A port whose IP configuration the bridge took over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TakenOver {
    pub port: String,
    /// The profile it was taken from.
    pub uuid: String,
    pub id: String,
    /// What the bridge inherited: (NetworkManager property, value).
    pub settings: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    #[serde(default)]
    pub disabled: Vec<Disabled>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken_over: Vec<TakenOver>,
}

impl Memory {
    pub fn is_empty(&self) -> bool {
        self.disabled.is_empty() && self.taken_over.is_empty()
    }
}

/// The memory file as read: its content (empty when never written), and whether it held
/// something that is not this format (then nothing it listed can be given back).
#[derive(Debug, Clone, Default)]
pub struct Remembered {
    pub memory: Memory,
    pub unreadable: bool,
    /// The file's text as read (`None`: no file), put back when a run rolls back.
    pub raw: Option<String>,
}

impl Remembered {
    pub fn read(ctx: &mut Ctx, bridge: &str) -> Remembered {
        Remembered::from_text(ctx.read_file(&path(bridge)))
    }

    /// The memory a file with this text holds (`None`: no file, never written).
    pub fn from_text(text: Option<String>) -> Remembered {
        let Some(text) = text else {
            return Remembered::default();
        };
        match serde_json::from_str(&text) {
            Ok(memory) => Remembered {
                memory,
                unreadable: false,
                raw: Some(text),
            },
            Err(_) => Remembered {
                memory: Memory::default(),
                unreadable: true,
                raw: Some(text),
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
