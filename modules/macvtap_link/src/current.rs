//! Every read of the host: all links in one `ip -j -d link show` (the parent and its other
//! macvlan/macvtap links matter too) and, when NetworkManager is involved, its macvlan
//! profiles for this interface name: one `nmcli` list call whose FILENAME column leads to
//! their keyfiles (read directly; `con show` only for a profile stored another way).

use crate::params::{Params, Persistence, State};
use kvmnet_iproute::{find, normalize_mac, read_links, Link, MacvlanMode};
use kvmnet_nmcli::conn::{self, Conn, Props};
use kvmnet_nmdbus::keyfiles::{READ_ONLY, SAVED};

/// The keyfile folders searched for other profiles that name the link: saved and read-only
/// ones (the in-memory folder holds, above all, the profiles NetworkManager generates for
/// guests' taps, one per guest).
const SAVED_KEYFILES: &[&str] = &[SAVED, READ_ONLY];
use kvmnet_protocol::{Ctx, ErrorKind, Result};

/// The settings read for a macvlan profile (setting-level names: every NM knows them).
pub const PROFILE_SETTINGS: &str = "connection,macvlan,802-3-ethernet,ipv4,ipv6";

/// A NetworkManager macvlan profile for this interface name, in the terms the module
/// compares.
#[derive(Debug, Clone, PartialEq)]
pub struct MacvlanProfile {
    pub uuid: String,
    pub id: String,
    pub parent: String,
    pub mode: Option<MacvlanMode>,
    pub tap: bool,
    /// `802-3-ethernet.cloned-mac-address`, normalised; `None` when unset.
    pub mac: Option<String>,
    pub ipv4_method: String,
    pub ipv6_method: String,
    pub autoconnect: bool,
    /// The device it is active on, if active.
    pub active_on: Option<String>,
}

impl MacvlanProfile {
    pub fn from_conn(c: &Conn) -> MacvlanProfile {
        let p = &c.p;
        let text = |k: &str| p.get(k).unwrap_or("").to_string();
        MacvlanProfile {
            uuid: c.uuid.clone(),
            id: c.id().to_string(),
            parent: text("macvlan.parent"),
            mode: p.get("macvlan.mode").and_then(MacvlanMode::from_nm),
            tap: p.get("macvlan.tap").is_some_and(|v| v.trim() == "yes"),
            mac: p
                .get("802-3-ethernet.cloned-mac-address")
                .and_then(normalize_mac),
            ipv4_method: text("ipv4.method"),
            ipv6_method: text("ipv6.method"),
            autoconnect: c.autoconnect(),
            active_on: (c.active() && !c.device.is_empty()).then(|| c.device.clone()),
        }
    }
    pub fn active_on(&self, name: &str) -> bool {
        self.active_on.as_deref() == Some(name)
    }
}

/// What the host holds.
#[derive(Debug, Clone)]
pub struct Current {
    pub links: Vec<Link>,
    /// NetworkManager's macvlan profiles for this interface name; `None` when not read
    /// (`persistent` omitted, or no NetworkManager on a host where that is fine).
    pub profiles: Option<Vec<MacvlanProfile>>,
}

impl Current {
    pub fn link(&self, name: &str) -> Option<&Link> {
        find(&self.links, name)
    }
    /// The profiles read (none when NetworkManager was not read).
    pub fn profiles(&self) -> &[MacvlanProfile] {
        self.profiles.as_deref().unwrap_or_default()
    }
    pub fn nm_read(&self) -> bool {
        self.profiles.is_some()
    }
}

/// The links, and NetworkManager's profiles for this name when `persistent` is given
/// (NetworkManager required) or the link is to be removed (when NetworkManager is there).
/// A no-change run starts 1 ip process, plus 1 nmcli when `persistent` is given.
pub fn read(ctx: &mut Ctx, p: &Params) -> Result<Current> {
    let links = read_links(ctx, false)?;
    let profiles = match (p.persistence(), p.state) {
        (Persistence::Profile | Persistence::NoProfile, _) => Some(read_profiles(ctx, &p.name)?),
        (Persistence::Untouched, State::Absent) => read_profiles_if_nm(ctx, &p.name)?,
        (Persistence::Untouched, State::Present) => None,
    };
    Ok(Current { links, profiles })
}

/// `persistent: true` on a link that exists, without nmcli: its profiles are those its
/// NetworkManager device can activate or has active (D-Bus), and the saved macvlan
/// keyfiles that name it (a profile for another parent or mode, which the device does not
/// list; NetworkManager keeps every macvlan profile as a keyfile). A no-change run starts
/// ONE process (ip). Only the full read sees an in-memory profile (`save no`) that names
/// the link for another parent or mode. `None` (the full read decides) for anything else: no link yet, a device
/// NetworkManager does not manage, `persistent: false` and `state: absent` (which must
/// show that no profile names the link: only nmcli's full list can).
pub fn read_quick(ctx: &mut Ctx, p: &Params) -> Result<Option<Current>> {
    if p.persistence() != Persistence::Profile || p.state != State::Present || !ctx.has_bus() {
        return Ok(None);
    }
    let links = read_links(ctx, false)?;
    if find(&links, &p.name).is_none() {
        return Ok(None);
    }
    let named =
        |x: &kvmnet_nmcli::Profile| x.kind() == "macvlan" && x.interface_name() == Some(&p.name);
    let uuids: Vec<String> =
        kvmnet_nmdbus::keyfiles::profiles_where(ctx, SAVED_KEYFILES, "macvlan", named)
            .iter()
            .map(|x| x.uuid().to_string())
            .collect();
    let Some(v) = kvmnet_nmdbus::view::read(ctx, std::slice::from_ref(&p.name), &uuids)? else {
        return Ok(None);
    };
    if !v.device(&p.name).is_some_and(|d| d.managed) {
        return Ok(None);
    }
    let profiles = v
        .conns
        .conns
        .iter()
        .filter(|c| named(&c.p))
        .map(MacvlanProfile::from_conn)
        .collect();
    Ok(Some(Current {
        links,
        profiles: Some(profiles),
    }))
}

/// NetworkManager's macvlan profiles whose interface name is `name`.
pub fn read_profiles(ctx: &mut Ctx, name: &str) -> Result<Vec<MacvlanProfile>> {
    let conns = conn::read(
        ctx,
        |r| r.kind == "macvlan",
        Props::KeyfileFirst(PROFILE_SETTINGS),
    )?;
    Ok(conns
        .conns
        .iter()
        .filter(|c| c.ifname() == Some(name))
        .map(MacvlanProfile::from_conn)
        .collect())
}

/// Like [`read_profiles`], but a host without nmcli or a running NetworkManager has none.
fn read_profiles_if_nm(ctx: &mut Ctx, name: &str) -> Result<Option<Vec<MacvlanProfile>>> {
    match read_profiles(ctx, name) {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.kind == ErrorKind::MissingDependency => Ok(None),
        Err(e) => Err(e),
    }
}
