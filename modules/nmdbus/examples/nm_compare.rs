//! Reads the profiles of some interfaces both ways, over D-Bus ([`kvmnet_nmdbus::view`])
//! and with nmcli (`kvmnet_nmcli::conn`), and prints where they differ on a property the
//! modules read. The lab tests run it on every NetworkManager the lab has
//! (tests/test_nm_quick.py); by hand, on a host with NetworkManager:
//!
//! `cargo run --example nm_compare -- [--dump] [--capture DIR] IFACE... [--uuid UUID...]`
//!
//! Prints one JSON object (`profiles`, `differences`); exit status 1 when they differ.
//! `--dump` adds each profile's D-Bus settings as read; `--capture DIR` writes, for each
//! profile, NetworkManager's `GetSettings` reply (`ID.dbus.json`) and nmcli's terse output
//! (`ID.nmcli`): the captures the unit tests (tests/captured.rs) hold the reader against.

use kvmnet_nmcli::conn::{self, Props};
use kvmnet_nmcli::Connections;
use kvmnet_nmdbus::settings::{comparable, known};
use kvmnet_nmdbus::{view, SystemBus};
use kvmnet_protocol::runner::SystemRunner;
use kvmnet_protocol::{BusCall, Ctx};
use serde_json::{json, Value};

const SETTINGS: &str = "connection,bridge,802-3-ethernet,macvlan,ipv4,ipv6";

/// Each profile's `GetSettings` reply and nmcli's output, as the tools gave them.
fn write_captures(ctx: &mut Ctx, dir: &str, conns: &[kvmnet_nmcli::Conn]) {
    std::fs::create_dir_all(dir).expect("capture folder");
    for c in conns {
        let by_uuid = view::by_uuid_call(&c.uuid);
        let path = ctx.bus_read(&by_uuid).expect("GetConnectionByUuid");
        let path = path[0].as_str().unwrap_or_default().to_string();
        let get = BusCall::new(
            kvmnet_nmdbus::NM,
            path,
            view::CONNECTION,
            "GetSettings",
            vec![],
        );
        let reply = ctx.bus_read(&get).expect("GetSettings");
        let name: String = c
            .id()
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        let pretty = serde_json::to_string_pretty(&reply[0]).unwrap_or_default() + "\n";
        std::fs::write(format!("{dir}/{name}.dbus.json"), pretty).expect("write");
        let argv = conn::show_argv(SETTINGS, [c.uuid.as_str()]);
        let out = ctx.read(&argv).expect("nmcli con show");
        std::fs::write(format!("{dir}/{name}.nmcli"), out.stdout).expect("write");
    }
}

/// The command line: interfaces, then `--uuid UUID...`; `--dump`; `--capture DIR`.
struct Args {
    ifaces: Vec<String>,
    uuids: Vec<String>,
    dump: bool,
    capture: Option<String>,
}

fn parse_args() -> Args {
    let mut out = Args {
        ifaces: Vec::new(),
        uuids: Vec::new(),
        dump: false,
        capture: None,
    };
    let mut by_uuid = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dump" => out.dump = true,
            "--capture" => out.capture = args.next(),
            "--uuid" => by_uuid = true,
            _ if by_uuid => out.uuids.push(a),
            _ => out.ifaces.push(a),
        }
    }
    out
}

/// Each profile as both readers see it: (profiles, differences).
fn compare(dbus: &Connections, by_nmcli: &Connections, dump: bool) -> (Vec<Value>, Vec<Value>) {
    let mut differences = Vec::new();
    let mut profiles = Vec::new();
    for d in &dbus.conns {
        let Some(n) = by_nmcli.conn(&d.uuid) else {
            differences.push(json!({"uuid": d.uuid, "missing_in": "nmcli"}));
            continue;
        };
        let mut keys: Vec<&String> = n.p.props.keys().chain(d.p.props.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut differ = |key: &str, a: Value, b: Value| {
            if a != b {
                differences
                    .push(json!({"uuid": d.uuid, "id": d.id(), "key": key, "dbus": a, "nmcli": b}));
            }
        };
        for k in keys.into_iter().filter(|k| known(k)) {
            differ(
                k,
                json!(comparable(d.p.get(k))),
                json!(comparable(n.p.get(k))),
            );
        }
        differ("device", json!(d.device), json!(n.device));
        differ("state", json!(d.state), json!(n.state));
        differ("external", json!(d.external), json!(n.external));
        let mut p = json!({"uuid": d.uuid, "id": d.id(), "type": d.kind(), "device": d.device,
                           "state": d.state, "external": d.external});
        if dump {
            p["dbus"] = Value::Object(
                d.p.props
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect(),
            );
        }
        profiles.push(p);
    }
    (profiles, differences)
}

fn main() {
    let args = parse_args();
    let runner = SystemRunner::default().with_bus(Box::new(SystemBus::default()));
    let mut ctx = Ctx::new(Default::default(), Box::new(runner));
    let v = match view::read(&mut ctx, &args.ifaces, &args.uuids) {
        Ok(Some(v)) => v,
        Ok(None) => {
            println!("{}", json!({"unreadable": true, "calls": ctx.calls}));
            std::process::exit(2);
        }
        Err(e) => {
            println!("{}", json!({"error": e.msg}));
            std::process::exit(2);
        }
    };
    let wanted: Vec<String> = v.conns.conns.iter().map(|c| c.uuid.clone()).collect();
    let by_nmcli = conn::read(
        &mut ctx,
        |r| wanted.contains(&r.uuid),
        Props::Nmcli(SETTINGS),
    )
    .unwrap_or_else(|e| panic!("nmcli: {}", e.msg));
    let (profiles, differences) = compare(&v.conns, &by_nmcli, args.dump);
    if let Some(dir) = &args.capture {
        write_captures(&mut ctx, dir, &v.conns.conns);
    }
    let devices: Vec<Value> = v
        .devices
        .iter()
        .map(|d| json!({"iface": d.iface, "managed": d.managed}))
        .collect();
    println!(
        "{}",
        json!({"nm": format!("{}.{}", v.nm.0, v.nm.1), "devices": devices, "unknown": v.unknown,
               "profiles": profiles, "differences": differences,
               "dbus_calls": ctx.calls.iter().filter(|c| c[0] == "dbus").count()})
    );
    std::process::exit(if differences.is_empty() { 0 } else { 1 });
}
