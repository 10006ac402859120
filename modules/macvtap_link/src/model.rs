//! The one normalisation layer: kernel (`ip -j -d link`) and NetworkManager (`nmcli -t`)
//! spellings turned into the values the module compares and reports.

use kvmnet_iproute::{normalize_mac, parse_links, Link};
use kvmnet_nmcli::{parse_keyfile, parse_list, parse_profiles, Profile};
use kvmnet_protocol::{Ctx, Error, ErrorKind, Result};
use serde_json::{json, Value};

/// A macvlan/macvtap mode. Canonical names are the module's (`passthrough`); the kernel
/// and NetworkManager spell it `passthru`, and NM prints modes as numbers in terse mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Vepa,
    Bridge,
    Private,
    Passthrough,
    /// A mode this module does not set (`source`), kept as the kernel spells it.
    Other(String),
}

impl Mode {
    /// From the option value (already normalised by the spec) or a kernel name.
    pub fn parse(s: &str) -> Mode {
        match s.trim() {
            "vepa" => Mode::Vepa,
            "bridge" => Mode::Bridge,
            "private" => Mode::Private,
            "passthru" | "passthrough" => Mode::Passthrough,
            other => Mode::Other(other.to_string()),
        }
    }
    /// From NetworkManager's `macvlan.mode`: `3` in terse mode, `3 (private)` in pretty
    /// mode, or a name.
    pub fn from_nm(s: &str) -> Option<Mode> {
        let s = s.trim();
        let num: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        if num.is_empty() {
            return (!s.is_empty()).then(|| Mode::parse(s));
        }
        Some(match num.as_str() {
            "1" => Mode::Vepa,
            "2" => Mode::Bridge,
            "3" => Mode::Private,
            "4" => Mode::Passthrough,
            "5" => Mode::Other("source".into()),
            _ => Mode::Other(s.to_string()),
        })
    }
    /// The module's spelling (what results and diffs show).
    pub fn name(&self) -> &str {
        match self {
            Mode::Vepa => "vepa",
            Mode::Bridge => "bridge",
            Mode::Private => "private",
            Mode::Passthrough => "passthrough",
            Mode::Other(s) => s,
        }
    }
    /// The kernel's and NetworkManager's spelling (what commands take).
    pub fn kernel(&self) -> &str {
        match self {
            Mode::Passthrough => "passthru",
            m => m.name(),
        }
    }
    pub fn is_passthrough(&self) -> bool {
        *self == Mode::Passthrough
    }
}

/// One link as the module sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkView {
    pub name: String,
    pub ifindex: u32,
    /// `macvtap`, `bridge`, ...; `None` for a plain NIC.
    pub kind: Option<String>,
    pub parent: Option<String>,
    pub mode: Option<Mode>,
    pub mac: Option<String>,
    pub up: bool,
    /// The controller this link is a port of (bridge, bond, ...), and its kind.
    pub master: Option<String>,
    pub master_kind: Option<String>,
}

impl LinkView {
    pub fn from_link(l: &Link) -> LinkView {
        LinkView {
            name: l.ifname.clone(),
            ifindex: l.ifindex,
            kind: l.kind().map(str::to_string),
            parent: l.link.clone(),
            mode: l.info_data_str("mode").map(Mode::parse),
            mac: l.address.as_deref().and_then(normalize_mac),
            up: l.is_up(),
            master: l.master.clone(),
            master_kind: l.slave_kind().map(str::to_string),
        }
    }
    pub fn is_macvlan_family(&self) -> bool {
        matches!(self.kind.as_deref(), Some("macvtap") | Some("macvlan"))
    }
    /// How a human calls what this link is.
    pub fn describe_kind(&self) -> String {
        match self.kind.as_deref() {
            None => "network interface (no link kind: a NIC)".to_string(),
            Some("macvlan") => "macvlan (without a tap device)".to_string(),
            Some(k) => k.to_string(),
        }
    }
}

/// Every link of the host, from one `ip -j -d link show`.
pub fn read_links(ctx: &mut Ctx) -> Result<Vec<LinkView>> {
    let out = ctx.read(&["ip", "-j", "-d", "link", "show"])?;
    Ok(parse_links(&out.stdout)?
        .iter()
        .map(LinkView::from_link)
        .collect())
}

pub fn find<'a>(links: &'a [LinkView], name: &str) -> Option<&'a LinkView> {
    links.iter().find(|l| l.name == name)
}

/// A NetworkManager macvlan profile for our interface name.
#[derive(Debug, Clone, PartialEq)]
pub struct Prof {
    pub uuid: String,
    pub id: String,
    pub parent: String,
    pub mode: Option<Mode>,
    pub tap: bool,
    /// `802-3-ethernet.cloned-mac-address`, normalised; `None` when unset.
    pub mac: Option<String>,
    pub ipv4_method: String,
    pub ipv6_method: String,
    pub autoconnect: bool,
    /// The device it is active on, if active.
    pub active_on: Option<String>,
}

impl Prof {
    fn from_profile(p: &Profile, active_on: Option<String>) -> Prof {
        let yes = |k: &str| p.get(k).map(|v| v.trim() == "yes").unwrap_or(false);
        Prof {
            uuid: p.uuid().to_string(),
            id: p.id().to_string(),
            parent: p.get("macvlan.parent").unwrap_or("").to_string(),
            mode: p.get("macvlan.mode").and_then(Mode::from_nm),
            tap: yes("macvlan.tap"),
            mac: p
                .get("802-3-ethernet.cloned-mac-address")
                .and_then(normalize_mac),
            ipv4_method: p.get("ipv4.method").unwrap_or("").to_string(),
            ipv6_method: p.get("ipv6.method").unwrap_or("").to_string(),
            autoconnect: yes("connection.autoconnect"),
            active_on,
        }
    }
    pub fn active_on(&self, name: &str) -> bool {
        self.active_on.as_deref() == Some(name)
    }
}

/// The settings read for a macvlan profile (setting-level names: every NM knows them).
pub const PROFILE_FIELDS: &str = "connection,macvlan,802-3-ethernet,ipv4,ipv6";

/// The list call: every profile's UUID, type, activation and file.
pub const LIST_ARGV: &[&str] = &[
    "nmcli",
    "-t",
    "-f",
    "UUID,TYPE,ACTIVE,DEVICE,FILENAME",
    "con",
    "show",
];

/// NetworkManager's macvlan profiles whose interface name is `name`: one list call (with
/// each profile's FILENAME), the macvlan profiles' keyfiles read directly, and one `con show`
/// only for a macvlan profile whose keyfile cannot be read (another settings plugin).
pub fn read_profiles(ctx: &mut Ctx, name: &str) -> Result<Vec<Prof>> {
    let argv = LIST_ARGV;
    let out = ctx.read_any(argv)?;
    if !out.success() {
        let why = if out.stderr.trim().is_empty() {
            out.stdout.trim().to_string()
        } else {
            out.stderr.trim().to_string()
        };
        return Err(Error::missing_dependency(format!(
            "cannot read NetworkManager profiles (nmcli rc {}): {why}; the option 'persistent' needs a running NetworkManager",
            out.rc
        ))
        .with("cmd", argv.join(" "))
        .with("rc", out.rc)
        .with("stderr", out.stderr));
    }
    let mut found: Vec<Prof> = Vec::new();
    let mut unread: Vec<(String, Option<String>)> = Vec::new();
    for row in parse_list(&out.stdout) {
        if row.len() < 4 || row[1] != "macvlan" {
            continue;
        }
        let (uuid, file) = (&row[0], row.get(4).map(String::as_str).unwrap_or(""));
        if found.iter().any(|p| p.uuid == *uuid) || unread.iter().any(|(u, _)| u == uuid) {
            continue;
        }
        let active = (row[2] == "yes" && !row[3].is_empty()).then(|| row[3].clone());
        let from_file = file
            .ends_with(".nmconnection")
            .then(|| ctx.read_file(file))
            .flatten()
            .map(|text| parse_keyfile(&text))
            .filter(|p| p.uuid() == uuid);
        match from_file {
            Some(p) => {
                if p.interface_name() == Some(name) {
                    found.push(Prof::from_profile(&p, active));
                }
            }
            None => unread.push((uuid.clone(), active)),
        }
    }
    if !unread.is_empty() {
        let mut argv: Vec<String> = ["nmcli", "-t", "-f", PROFILE_FIELDS, "con", "show"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (u, _) in &unread {
            argv.extend(["uuid".to_string(), u.clone()]);
        }
        let out = ctx.read(&argv)?;
        for p in parse_profiles(&out.stdout) {
            if p.interface_name() == Some(name) {
                let active = unread
                    .iter()
                    .find(|(u, _)| u == p.uuid())
                    .and_then(|(_, a)| a.clone());
                found.push(Prof::from_profile(&p, active));
            }
        }
    }
    Ok(found)
}

/// Like [`read_profiles`], but a host without nmcli or a running NetworkManager has none.
pub fn read_profiles_if_nm(ctx: &mut Ctx, name: &str) -> Result<Option<Vec<Prof>>> {
    match read_profiles(ctx, name) {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.kind == ErrorKind::MissingDependency => Ok(None),
        Err(e) => Err(e),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use std::io::Read;
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::bug(format!("cannot read /dev/urandom: {e}")))?;
    Ok(b)
}

/// A random unicast, locally administered MAC, as the kernel picks for a new link.
pub fn random_mac() -> Result<String> {
    let mut b = random_bytes::<6>()?;
    b[0] = (b[0] & 0xfe) | 0x02;
    Ok(b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// The `link` return value.
pub fn link_json(l: &LinkView, prof: Option<&Prof>, nm_read: bool) -> Value {
    let mut v = json!({
        "name": l.name,
        "ifindex": l.ifindex,
        "mac": l.mac,
        "mode": l.mode.as_ref().map(Mode::name),
        "parent": l.parent,
        "up": l.up,
        "tap_device": format!("/dev/tap{}", l.ifindex),
    });
    if nm_read {
        v["persistent"] = json!(prof.is_some());
        v["conn_name"] = json!(prof.map(|p| p.id.clone()));
        v["conn_uuid"] = json!(prof.map(|p| p.uuid.clone()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_in_every_spelling() {
        assert_eq!(Mode::parse("passthru"), Mode::Passthrough);
        assert_eq!(Mode::parse("passthrough").kernel(), "passthru");
        assert_eq!(Mode::from_nm("3"), Some(Mode::Private));
        assert_eq!(Mode::from_nm("3 (private)"), Some(Mode::Private));
        assert_eq!(Mode::from_nm("4"), Some(Mode::Passthrough));
        assert_eq!(Mode::from_nm("bridge"), Some(Mode::Bridge));
        assert_eq!(Mode::from_nm(""), None);
        assert_eq!(Mode::parse("source").name(), "source");
    }

    #[test]
    fn random_values_have_the_right_shape() {
        let m = random_mac().unwrap();
        assert_eq!(normalize_mac(&m).as_deref(), Some(m.as_str()));
        let first = u8::from_str_radix(&m[0..2], 16).unwrap();
        assert_eq!(first & 0x03, 0x02, "unicast, locally administered: {m}");
    }
}
