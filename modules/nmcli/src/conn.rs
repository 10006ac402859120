//! NetworkManager's profiles as the modules read them: one list call, then the selected
//! profiles' properties (one `con show` call for all of them, or their keyfiles where a
//! module needs only a few properties), and the relations between profiles, devices and
//! links that bridges and their ports need.

use crate::{parse_keyfile, parse_list, parse_profiles, Profile};
use kvmnet_iproute::{normalize_mac, Link};
use kvmnet_protocol::{Ctx, Error, ErrorKind, Result};

/// The list call: every profile's UUID, type, device, activation state and file.
pub const LIST_ARGV: &[&str] = &[
    "nmcli",
    "-t",
    "-f",
    "UUID,TYPE,DEVICE,STATE,FILENAME",
    "con",
    "show",
];

/// One row of the list call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub uuid: String,
    /// `bridge`, `802-3-ethernet`, `macvlan`, `tun`, ...
    pub kind: String,
    pub device: String,
    /// activated, activating, deactivating, or empty when inactive.
    pub state: String,
    pub file: String,
}

/// How the selected profiles' properties are read.
#[derive(Debug, Clone, Copy)]
pub enum Props {
    /// One `nmcli -t -f SETTINGS con show uuid U ...` call for all of them.
    Nmcli(&'static str),
    /// Their keyfiles, read directly (no process); `con show` with these settings only for
    /// a profile stored another way (another settings plugin, an unreadable file).
    KeyfileFirst(&'static str),
}

/// One profile: what the list says about its activation, and its properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Conn {
    pub uuid: String,
    pub device: String,
    /// activated, activating, deactivating, or empty when inactive.
    pub state: String,
    /// A profile NetworkManager generated for a device someone else configured (a guest's
    /// tap that libvirt put on a bridge, a bridge made with `ip link`): its volatile
    /// keyfile says `[.nmmeta] external=true` / `nm-generated=true`.
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
    /// `802-3-ethernet.mac-address`: the NIC a profile without an interface name is for.
    pub fn bound_mac(&self) -> Option<String> {
        self.p
            .get("802-3-ethernet.mac-address")
            .and_then(normalize_mac)
    }
}

/// The profiles read, and which spelling of the controller properties this NM uses.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    pub conns: Vec<Conn>,
    /// NM >= 1.46 prints `connection.controller` / `connection.port-type` (older:
    /// `master` / `slave-type`).
    pub newer_names: bool,
}

impl Connections {
    pub fn controller_key(&self) -> &'static str {
        if self.newer_names {
            "connection.controller"
        } else {
            "connection.master"
        }
    }
    pub fn port_type_key(&self) -> &'static str {
        if self.newer_names {
            "connection.port-type"
        } else {
            "connection.slave-type"
        }
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
    pub fn port_of(&self, c: &Conn, links: &[Link]) -> Option<String> {
        if let Some(i) = c.ifname() {
            return Some(i.to_string());
        }
        if let Some(mac) = c.bound_mac() {
            if let Some(l) = links
                .iter()
                .find(|l| l.mac().as_deref() == Some(mac.as_str()))
            {
                return Some(l.ifname.clone());
            }
        }
        (c.active() && !c.device.is_empty()).then(|| c.device.clone())
    }
    /// Profiles that could hold interface `port`: bound by name or MAC, or active on it.
    pub fn bound_to(&self, port: &str, links: &[Link]) -> Vec<&Conn> {
        let mac = links.iter().find(|l| l.ifname == port).and_then(Link::mac);
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

/// Run an nmcli read; NetworkManager not running (rc 8) and nmcli missing are
/// `missing_dependency` with a message that says so.
pub fn nmcli_read<S: AsRef<str>>(ctx: &mut Ctx, argv: &[S]) -> Result<String> {
    let out = ctx.read_any(argv).map_err(|e| {
        if e.kind == ErrorKind::MissingDependency {
            Error::missing_dependency(format!(
                "NetworkManager's command-line client is needed: {}",
                e.msg
            ))
        } else {
            e
        }
    })?;
    if out.success() {
        return Ok(out.stdout);
    }
    let text = format!("{}{}", out.stderr, out.stdout);
    // rc 8: not running; "Could not create NMClient object": no system bus to reach it on.
    if out.rc == 8
        || text.contains("NetworkManager is not running")
        || text.contains("Could not create NMClient object")
    {
        return Err(Error::missing_dependency(
            "NetworkManager is not running on this host; this module works through it (start NetworkManager, or manage this host's network another way)",
        ));
    }
    let argv: Vec<String> = argv.iter().map(|s| s.as_ref().to_string()).collect();
    Err(kvmnet_protocol::runner::command_failed(&argv, &out))
}

/// Whether `nmcli con delete uuid U...` (its output `out`, accepted with rc 10) deleted
/// none of `uuids`: it prints "Connection 'ID' (UUID) successfully deleted." for each one
/// it deletes (NetworkManager 1.30, 1.42, 1.52) and, for those already gone, only errors
/// on stderr with rc 10. Such a delete changed nothing.
pub fn deleted_nothing(out: &kvmnet_protocol::Output, uuids: &[String]) -> bool {
    out.rc == 10
        && !out.stdout.lines().any(|l| {
            l.contains("successfully deleted")
                && uuids.iter().any(|u| l.contains(&format!("({u})")))
        })
}

/// nmcli's "no such connection profile" (rc 10): a profile listed a moment ago is gone.
pub fn vanished(e: &Error) -> bool {
    e.kind == ErrorKind::CommandFailed && e.extra.get("rc") == Some(&serde_json::json!(10))
}

/// The row whose profile nmcli's property call says is gone ("Error: UUID - no such
/// connection profile.", rc 10): it vanished after the list call.
fn vanished_row(e: &Error, rows: &[Row]) -> Option<String> {
    if !vanished(e) {
        return None;
    }
    let said = e.extra.get("stderr").and_then(|v| v.as_str()).unwrap_or("");
    rows.iter()
        .find(|r| said.contains(&format!("{} - no such connection profile", r.uuid)))
        .map(|r| r.uuid.clone())
}

/// How often the profiles are read again when one vanished between the list call and the
/// property call (NetworkManager drops the in-memory profiles it generated for links that
/// go away, e.g. right after a bridge is deleted).
const READ_ATTEMPTS: usize = 3;

/// Read the profiles whose list row `select` accepts, their properties as `how` says. A
/// profile active on several devices is listed once per device; it is read once.
pub fn read(ctx: &mut Ctx, select: impl Fn(&Row) -> bool, how: Props) -> Result<Connections> {
    let mut attempt = 1;
    loop {
        match read_once(ctx, &select, how) {
            Err(e) if attempt < READ_ATTEMPTS && vanished(&e) => attempt += 1,
            other => return other,
        }
    }
}

/// A device name as NetworkManager before 1.42 prints it: bytes outside ASCII as octal
/// escapes (`br\303\274` for `brü`) and a backslash doubled; later versions print the
/// name as it is, which this leaves unchanged.
pub fn device_name(printed: &str) -> String {
    if !printed.contains('\\') {
        return printed.to_string();
    }
    let b = printed.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |j: usize| b.get(j).is_some_and(|c| (b'0'..=b'7').contains(c));
        if b[i] == b'\\' && octal(i + 1) && octal(i + 2) && octal(i + 3) {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rows of the list call.
pub fn parse_rows(text: &str) -> Vec<Row> {
    parse_list(text)
        .into_iter()
        .filter(|r| r.len() >= 4)
        .map(|mut r| {
            r.resize(5, String::new());
            Row {
                uuid: r[0].clone(),
                kind: r[1].clone(),
                device: device_name(&r[2]),
                state: r[3].clone(),
                file: r[4].clone(),
            }
        })
        .collect()
}

fn read_once(ctx: &mut Ctx, select: &impl Fn(&Row) -> bool, how: Props) -> Result<Connections> {
    let mut rows: Vec<Row> = Vec::new();
    for r in parse_rows(&nmcli_read(ctx, LIST_ARGV)?) {
        if select(&r) && !rows.iter().any(|x| x.uuid == r.uuid) {
            rows.push(r);
        }
    }
    let mut found: Vec<(Row, Profile)> = Vec::new();
    let mut unread: Vec<Row> = Vec::new();
    let settings = match how {
        Props::Nmcli(s) => {
            unread = rows;
            s
        }
        Props::KeyfileFirst(s) => {
            for r in rows {
                match keyfile(ctx, &r) {
                    Some(p) => found.push((r, p)),
                    None => unread.push(r),
                }
            }
            s
        }
    };
    while !unread.is_empty() {
        let text = match nmcli_read(
            ctx,
            &show_argv(settings, unread.iter().map(|r| r.uuid.as_str())),
        ) {
            Ok(text) => text,
            Err(e) => match vanished_row(&e, &unread) {
                // gone since the list call: it is not on the host any more
                Some(gone) => {
                    unread.retain(|r| r.uuid != gone);
                    continue;
                }
                None => return Err(e),
            },
        };
        for p in parse_profiles(&text) {
            if let Some(r) = unread.iter().find(|r| r.uuid == p.uuid()) {
                found.push((r.clone(), p));
            }
        }
        break;
    }
    let mut conns = Vec::new();
    for (r, p) in found {
        let external = generated_externally(ctx, &r.file);
        conns.push(Conn {
            uuid: r.uuid,
            device: r.device,
            state: r.state,
            external,
            p,
        });
    }
    let newer_names = conns
        .iter()
        .any(|c| c.p.get("connection.controller").is_some());
    Ok(Connections { conns, newer_names })
}

/// `nmcli -t -f SETTINGS con show uuid U1 uuid U2 ...`
pub fn show_argv<'a>(settings: &str, uuids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut argv: Vec<String> = ["nmcli", "-t", "-f", settings, "con", "show"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for u in uuids {
        argv.push("uuid".into());
        argv.push(u.to_string());
    }
    argv
}

fn keyfile(ctx: &mut Ctx, r: &Row) -> Option<Profile> {
    if !r.file.ends_with(".nmconnection") {
        return None;
    }
    let p = parse_keyfile(&ctx.read_file(&r.file)?);
    (p.uuid() == r.uuid).then_some(p)
}

/// Whether the profile stored in `file` is one NetworkManager generated for an externally
/// configured device. Only volatile profiles (under /run) can be; their keyfile is read
/// directly, which costs no process.
fn generated_externally(ctx: &mut Ctx, file: &str) -> bool {
    if !file.starts_with("/run/NetworkManager/") || !file.ends_with(".nmconnection") {
        return false;
    }
    ctx.read_file(file)
        .map(|text| parse_keyfile(&text))
        .is_some_and(|k| crate::keyfile::generated(&k))
}

/// One NetworkManager device (`nmcli -t -f DEVICE,STATE device`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    /// connected, disconnected, unavailable, unmanaged, ...
    pub state: String,
}

impl Device {
    pub fn managed(&self) -> bool {
        !self.state.starts_with("unmanaged")
    }
}

pub const DEVICES_ARGV: &[&str] = &["nmcli", "-t", "-f", "DEVICE,STATE", "device"];

/// NetworkManager's devices and their states.
pub fn read_devices(ctx: &mut Ctx) -> Result<Vec<Device>> {
    Ok(parse_list(&nmcli_read(ctx, DEVICES_ARGV)?)
        .into_iter()
        .filter(|r| r.len() >= 2)
        .map(|r| Device {
            name: device_name(&r[0]),
            state: r[1].clone(),
        })
        .collect())
}

/// The oldest NetworkManager kvmnet supports.
pub const OLDEST_SUPPORTED: (u32, u32) = (1, 22);

/// NetworkManager's version from `nmcli --version` ("nmcli tool, version 1.30.6").
pub fn parse_version(text: &str) -> Option<(u32, u32, String)> {
    let v = text.split_whitespace().last()?.trim();
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor, v.to_string()))
}

/// A failed nmcli write, explained: the NetworkManager version is named (learnt with one
/// `nmcli --version`, only now that something failed), and a version older than kvmnet
/// supports is said to be the reason, so the message is never only nmcli's own.
pub fn explain_failure(ctx: &mut Ctx, err: Error) -> Error {
    let nmcli = err
        .extra
        .get("cmd")
        .and_then(|c| c.as_str())
        .is_some_and(|c| c.starts_with("nmcli "));
    if err.kind != ErrorKind::CommandFailed || !nmcli {
        return err;
    }
    let Some((major, minor, v)) = ctx
        .read_any(&["nmcli", "--version"])
        .ok()
        .and_then(|o| parse_version(&o.stdout))
    else {
        return err;
    };
    let msg = if (major, minor) < OLDEST_SUPPORTED {
        format!(
            "NetworkManager {v} is older than {}.{}, the oldest kvmnet supports: {}",
            OLDEST_SUPPORTED.0, OLDEST_SUPPORTED.1, err.msg
        )
    } else {
        format!("{} (NetworkManager {v})", err.msg)
    };
    Error { msg, ..err }
}

/// The UUID NetworkManager gave a new profile, from `nmcli con add`'s answer
/// ("Connection 'NAME' (UUID) successfully added."): every NM since 1.0 says it so, and
/// NM before 1.42 refuses a UUID chosen by the caller.
pub fn added_uuid(stdout: &str) -> Option<String> {
    let line = stdout
        .lines()
        .find(|l| l.ends_with(") successfully added."))?;
    let end = line.len() - ") successfully added.".len();
    let start = line[..end].rfind('(')? + 1;
    let uuid = &line[start..end];
    let ok = uuid.len() == 36
        && uuid.chars().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    ok.then(|| uuid.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uuid_nm_assigned_is_read_from_its_answer() {
        // `nmcli con add type bridge ifname br9 con-name 'br (1)' ...` captured on NM 1.30.6
        // (bullseye), 1.42.4 (bookworm) and 1.52.1 (trixie): all answer alike, and the
        // parenthesis in the name does not hide the UUID.
        for (answer, uuid) in [
            (
                include_str!("../tests/data/con-add-1.30.out"),
                "270ba6d7-6e93-4b93-a222-49546782f4e2",
            ),
            (
                include_str!("../tests/data/con-add-1.42.out"),
                "41f7e4ff-ceb3-434c-aa71-8d9084fee1c8",
            ),
            (
                include_str!("../tests/data/con-add-1.52.out"),
                "89c43166-3746-47be-a280-e38c456fc220",
            ),
        ] {
            assert_eq!(added_uuid(answer).as_deref(), Some(uuid), "{answer}");
        }
        assert_eq!(added_uuid("Error: failed.\n"), None);
        assert_eq!(
            added_uuid("Connection 'x' (not-a-uuid) successfully added.\n"),
            None
        );
    }

    #[test]
    fn nm_1_30_escapes_device_names_outside_ascii() {
        // `nmcli -t -f UUID,TYPE,DEVICE,STATE con show` on NM 1.30.6 (bullseye) for a bridge
        // `brü`; NM 1.42 prints the name as it is.
        let rows = parse_rows("u1:bridge:br\\\\303\\\\274:activated:\n");
        assert_eq!(rows[0].device, "brü");
        assert_eq!(device_name("brü"), "brü");
        assert_eq!(device_name("a\\\\b"), "a\\b");
    }

    #[test]
    fn versions_of_nmcli() {
        assert_eq!(
            parse_version("nmcli tool, version 1.30.6\n"),
            Some((1, 30, "1.30.6".to_string()))
        );
        assert_eq!(
            parse_version("nmcli tool, version 1.52.1\n").map(|v| (v.0, v.1)),
            Some((1, 52))
        );
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn list_rows_pad_a_missing_file_column() {
        let rows = parse_rows("u1:bridge:br0:activated:/etc/x.nmconnection\nu2:tun::\n\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].file, "/etc/x.nmconnection");
        assert_eq!(rows[1].device, "");
        assert_eq!(rows[1].file, "");
    }
}
