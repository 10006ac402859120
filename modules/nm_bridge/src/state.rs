//! Reading the host: one `nmcli` list call (UUID, type, device, state, file of every profile),
//! one property-mode call for those profiles (setting-level fields, so both NM spellings
//! of master/controller come through), one `ip -j -d addr show`.

use kvmnet_iproute::{normalize_mac, parse_links, Link};
use kvmnet_nmcli::{parse_keyfile, parse_list, parse_profiles, Profile};
use kvmnet_protocol::{Ctx, Error, ErrorKind, Result};

/// Settings read for every profile. Setting-level selection never names a property the
/// installed NM does not know (NM >= 1.46 prints connection.controller/port-type).
pub const SETTINGS: &str = "connection,bridge,802-3-ethernet,ipv4,ipv6";

/// One profile: what the list says about its activation, and its properties.
#[derive(Debug, Clone)]
pub struct Conn {
    pub uuid: String,
    pub device: String,
    /// activated, activating, deactivating, or empty when inactive.
    pub state: String,
    /// A profile NetworkManager generated for a device someone else configured (a guest's
    /// tap that libvirt put on the bridge): its volatile keyfile says `[.nmmeta]
    /// external=true` / `nm-generated=true`. Never a port this module manages.
    pub external: bool,
    pub p: Profile,
}

impl Conn {
    pub fn id(&self) -> &str {
        self.p.id()
    }
    pub fn kind(&self) -> &str {
        self.p.kind()
    }
    pub fn ifname(&self) -> Option<&str> {
        self.p.interface_name()
    }
    pub fn active(&self) -> bool {
        !self.state.is_empty() && self.state != "deactivating"
    }
    pub fn active_on(&self, dev: &str) -> bool {
        self.active() && self.device == dev
    }
    pub fn autoconnect(&self) -> bool {
        self.p.get("connection.autoconnect") != Some("no")
    }
    pub fn bound_mac(&self) -> Option<String> {
        self.p
            .get("802-3-ethernet.mac-address")
            .and_then(normalize_mac)
    }
}

/// How apply treats one planned action when its command fails.
#[derive(Debug, Clone, PartialEq)]
pub enum OnFail {
    /// The task fails.
    Fail,
    /// A warning: restoring a switched-off profile that then cannot activate does not
    /// undo the removal that was asked for.
    Warn,
    /// `nmcli dev reapply` refused: re-activate the bridge, then these ports.
    Reactivate { bridge: String, ports: Vec<String> },
    /// A delete whose profiles are already gone (rc 10) has done its job.
    Gone,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    /// Filled by plan, one per action, read by apply.
    pub on_fail: std::cell::RefCell<Vec<OnFail>>,
    pub conns: Vec<Conn>,
    pub links: Vec<Link>,
    /// The property names this NM uses: `connection.master` or `connection.controller`.
    pub controller_key: String,
    pub port_type_key: String,
}

fn nm_error(argv: &[&str], e: Error) -> Error {
    if e.kind == ErrorKind::MissingDependency {
        return Error::missing_dependency(format!(
            "nm_bridge needs NetworkManager's command-line client: {}",
            e.msg
        ));
    }
    let _ = argv;
    e
}

fn nmcli_read(ctx: &mut Ctx, argv: &[&str]) -> Result<String> {
    let out = ctx.read_any(argv).map_err(|e| nm_error(argv, e))?;
    if out.success() {
        return Ok(out.stdout);
    }
    let text = format!("{}{}", out.stderr, out.stdout);
    if out.rc == 8 || text.contains("NetworkManager is not running") {
        return Err(Error::missing_dependency(
            "NetworkManager is not running on this host; nm_bridge manages bridges through it (start NetworkManager, or manage this host's network another way)",
        ));
    }
    Err(kvmnet_protocol::runner::command_failed(
        &argv.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &out,
    ))
}

/// The argv of the property read for these UUIDs.
pub fn props_argv(uuids: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = ["nmcli", "-t", "-f", SETTINGS, "con", "show"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for u in uuids {
        argv.push("uuid".into());
        argv.push(u.to_string());
    }
    argv
}

pub const LIST_ARGV: &[&str] = &[
    "nmcli",
    "-t",
    "-f",
    "UUID,TYPE,DEVICE,STATE,FILENAME",
    "con",
    "show",
];

/// Whether the profile stored in `file` is one NetworkManager generated for an externally
/// configured device. Only volatile profiles (under /run) can be; their keyfile is read
/// directly, which costs no process.
fn generated_externally(ctx: &mut Ctx, file: &str) -> bool {
    if !file.starts_with("/run/NetworkManager/") || !file.ends_with(".nmconnection") {
        return false;
    }
    ctx.read_file(file)
        .map(|text| parse_keyfile(&text))
        .is_some_and(|k| {
            k.get(".nmmeta.external") == Some("yes") || k.get(".nmmeta.nm-generated") == Some("yes")
        })
}
pub const IP_ARGV: &[&str] = &["ip", "-j", "-d", "addr", "show"];

/// How often the profiles are read again when one vanished between the list call and the
/// property call (NetworkManager removes the in-memory profiles it generated for links
/// that go away, e.g. right after a bridge is deleted).
const READ_ATTEMPTS: usize = 3;

/// Read profiles (all of them, or only `only` when given) and the kernel's links.
pub fn read(ctx: &mut Ctx, only: Option<&[String]>) -> Result<State> {
    let mut attempt = 1;
    loop {
        match read_once(ctx, only) {
            Err(e) if attempt < READ_ATTEMPTS && vanished(&e) => attempt += 1,
            other => return other,
        }
    }
}

/// nmcli's "no such connection profile" (rc 10): a profile listed a moment ago is gone.
pub fn vanished(e: &Error) -> bool {
    e.kind == ErrorKind::CommandFailed && e.extra.get("rc") == Some(&serde_json::json!(10))
}

fn read_once(ctx: &mut Ctx, only: Option<&[String]>) -> Result<State> {
    let list = nmcli_read(ctx, LIST_ARGV)?;
    let rows = parse_list(&list);
    let mut uuids: Vec<&str> = Vec::new();
    for r in &rows {
        if r.len() >= 4 && only.is_none_or(|o| o.iter().any(|u| *u == r[0])) {
            uuids.push(r[0].as_str());
        }
    }
    let mut conns = Vec::new();
    if !uuids.is_empty() {
        let argv = props_argv(&uuids);
        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        let text = nmcli_read(ctx, &argv_ref)?;
        for p in parse_profiles(&text) {
            let Some(r) = rows.iter().find(|r| r[0] == p.uuid()) else {
                continue;
            };
            let external = r.get(4).is_some_and(|file| generated_externally(ctx, file));
            conns.push(Conn {
                uuid: r[0].clone(),
                device: r[2].clone(),
                state: r[3].clone(),
                external,
                p,
            });
        }
    }
    let out = ctx.read(IP_ARGV)?;
    let links = parse_links(&out.stdout)?;
    let newer = conns
        .iter()
        .any(|c| c.p.get("connection.controller").is_some());
    Ok(State {
        on_fail: Default::default(),
        conns,
        links,
        controller_key: if newer {
            "connection.controller"
        } else {
            "connection.master"
        }
        .into(),
        port_type_key: if newer {
            "connection.port-type"
        } else {
            "connection.slave-type"
        }
        .into(),
    })
}

impl State {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.ifname == name)
    }
    pub fn conn(&self, uuid: &str) -> Option<&Conn> {
        self.conns.iter().find(|c| c.uuid == uuid)
    }
    /// Bridge profiles for interface `name`.
    pub fn bridges_for(&self, name: &str) -> Vec<&Conn> {
        self.conns
            .iter()
            .filter(|c| c.kind() == "bridge" && c.ifname() == Some(name))
            .collect()
    }
    /// The interface a (port) profile is bound to: its interface-name, else the link with
    /// its bound MAC, else the device it is active on.
    pub fn port_of(&self, c: &Conn) -> Option<String> {
        if let Some(i) = c.ifname() {
            return Some(i.to_string());
        }
        if let Some(mac) = c.bound_mac() {
            if let Some(l) = self.links.iter().find(|l| {
                l.address.as_deref().and_then(normalize_mac).as_deref() == Some(mac.as_str())
            }) {
                return Some(l.ifname.clone());
            }
        }
        (c.active() && !c.device.is_empty()).then(|| c.device.clone())
    }
    /// Profiles that could hold interface `port`: bound by name or MAC, or active on it.
    pub fn bound_to(&self, port: &str) -> Vec<&Conn> {
        let mac = self
            .link(port)
            .and_then(|l| l.address.as_deref())
            .and_then(normalize_mac);
        self.conns
            .iter()
            .filter(|c| c.kind() != "loopback")
            .filter(|c| {
                c.ifname() == Some(port)
                    || (c.ifname().is_none() && mac.is_some() && c.bound_mac() == mac)
                    || c.active_on(port)
            })
            .collect()
    }
}

/// Whether profile `c` is a bridge port whose controller is `bridge` (for interface
/// `name`): controller given as UUID, interface name, or (unusable) profile name.
pub fn is_port_of(c: &Conn, bridge: &Conn, name: &str) -> bool {
    c.p.port_type() == Some("bridge")
        && c.p
            .controller()
            .is_some_and(|m| m == bridge.uuid || m == name || m == bridge.id())
}
