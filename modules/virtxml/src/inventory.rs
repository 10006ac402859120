//! Every libvirt network and domain at a URI, read in TWO virsh processes: their names
//! (`net-list --all --name`, `list --all --name`), then one batch holding each network's
//! `net-info` and both definitions and each domain's `dominfo` and both definitions.
//! A batch needs the names first (virsh has no "dump everything"), so two is the floor;
//! with no network and no domain the second process is not started.
//!
//! An object that goes away between the two processes (a transient guest that stopped,
//! a network someone undefined) is left out, as if listed a moment later.

use crate::netstate::{self, NetState};
use crate::{interface, virsh, Element};
use kvmnet_protocol::{Ctx, Error, ErrorKind, Result};

/// One network: its name and what `netstate` reads of it.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub state: NetState,
}

/// One domain (guest).
#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    pub uuid: Option<String>,
    /// `State:` of dominfo: running, paused, shut off, ...
    pub state: String,
    pub persistent: bool,
    pub autostart: bool,
    /// `dumpxml --inactive` (a transient domain's live definition).
    pub definition: Element,
    /// `dumpxml` of a running (or paused) domain; None when it is shut off.
    pub live: Option<Element>,
}

/// What libvirt holds at one URI.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub networks: Vec<Network>,
    pub domains: Vec<Domain>,
}

fn s(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

/// The first process: every network's name, and every domain's when `domains`.
pub fn names_commands(domains: bool) -> Vec<Vec<String>> {
    let mut cmds = vec![s(&["net-list", "--all", "--name"])];
    if domains {
        cmds.push(s(&["list", "--all", "--name"]));
    }
    cmds
}

/// The second process: three commands per network, then three per domain. Names go as
/// values of `--network` / `--domain`, never as bare arguments.
pub fn detail_commands(networks: &[String], domains: &[String]) -> Vec<Vec<String>> {
    let mut cmds: Vec<Vec<String>> = networks
        .iter()
        .flat_map(|n| netstate::query_commands(n))
        .collect();
    for d in domains {
        cmds.push(s(&["dominfo", "--domain", d]));
        cmds.push(s(&["dumpxml", "--inactive", "--domain", d]));
        cmds.push(s(&["dumpxml", "--domain", d]));
    }
    cmds
}

fn names(section: &str) -> Vec<String> {
    section
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// virsh's first error line, for messages.
fn first_error(stderr: &str) -> &str {
    let e = stderr.trim();
    e.lines()
        .find(|l| l.starts_with("error: "))
        .or(e.lines().next())
        .unwrap_or(e)
        .trim_start_matches("error: ")
}

fn failed(uri: &str, what: &str, stderr: &str) -> Error {
    Error::new(
        ErrorKind::CommandFailed,
        format!(
            "cannot list the libvirt {what} at {uri}: {}",
            first_error(stderr)
        ),
    )
    .with("stderr", stderr.to_string())
}

/// Read every network, and every domain when `domains`, at `uri`. libvirtd unreachable or
/// virsh missing is `missing_dependency`.
pub fn read(ctx: &mut Ctx, uri: &str, domains: bool) -> Result<Inventory> {
    let (sec, stderr) = virsh::run_batch(ctx, uri, &names_commands(domains))?;
    let net_names = names(&sec[0]);
    let dom_names = if domains { names(&sec[1]) } else { Vec::new() };
    // An empty list with one of virsh's errors is a list that failed, not an empty one.
    // Other lines on stderr are noise (over ssh, without a polkit agent: "Error
    // registering authentication agent: ...").
    if stderr.lines().any(|l| l.starts_with("error: ")) {
        if net_names.is_empty() {
            return Err(failed(uri, "networks", &stderr));
        }
        if domains && dom_names.is_empty() {
            return Err(failed(uri, "domains", &stderr));
        }
    }
    if net_names.is_empty() && dom_names.is_empty() {
        return Ok(Inventory::default());
    }
    let (sec, stderr) = virsh::run_batch(ctx, uri, &detail_commands(&net_names, &dom_names))?;
    let mut inv = Inventory::default();
    for (i, name) in net_names.iter().enumerate() {
        let state = netstate::parse(name, &sec[3 * i..3 * i + 3], &stderr)?;
        if state.exists {
            inv.networks.push(Network {
                name: name.clone(),
                state,
            });
        }
    }
    let base = 3 * net_names.len();
    for (i, name) in dom_names.iter().enumerate() {
        let at = base + 3 * i;
        if let Some(d) = parse_domain(name, &sec[at..at + 3], &stderr)? {
            inv.domains.push(d);
        }
    }
    Ok(inv)
}

/// One domain from its three sections (dominfo, inactive and live XML); None when it was
/// gone by the time the batch ran.
pub fn parse_domain(name: &str, sections: &[String], stderr: &str) -> Result<Option<Domain>> {
    let info = netstate::parse_info(&sections[0]);
    let get = |k: &str| {
        info.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if get("Name").is_none() {
        if stderr.contains("Domain not found") || stderr.contains("failed to get domain") {
            return Ok(None);
        }
        return Err(Error::new(
            ErrorKind::CommandFailed,
            format!(
                "cannot read libvirt domain '{name}': {}",
                first_error(stderr)
            ),
        )
        .with("stderr", stderr.to_string()));
    }
    let definition = Element::parse(&sections[1])
        .map_err(|e| e.context(format!("reading the definition of domain '{name}'")))?;
    let live = Element::parse(&sections[2])
        .ok()
        .filter(interface::is_running);
    Ok(Some(Domain {
        name: name.to_string(),
        uuid: get("UUID").map(str::to_string),
        state: get("State").unwrap_or("").to_string(),
        persistent: get("Persistent") == Some("yes"),
        autostart: get("Autostart") == Some("enable"),
        definition,
        live,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // virsh 9.0 `dominfo` of a running guest (lab).
    const DOMINFO: &str = "Id:             2\nName:           vm-private\nUUID:           e00b83d1-dc8a-40ad-ac0b-c78079e9409e\nOS Type:        hvm\nState:          running\nCPU(s):         1\nPersistent:     yes\nAutostart:      disable\n";

    #[test]
    fn detail_commands_name_every_object_as_an_option_value() {
        let c = detail_commands(&["n1".into()], &["--domain=x".into()]);
        assert_eq!(c.len(), 6);
        assert_eq!(c[0], s(&["net-info", "--network", "n1"]));
        assert_eq!(c[3], s(&["dominfo", "--domain", "--domain=x"]));
        assert_eq!(c[5], s(&["dumpxml", "--domain", "--domain=x"]));
        assert_eq!(
            names_commands(false),
            vec![s(&["net-list", "--all", "--name"])]
        );
    }

    #[test]
    fn only_virsh_errors_make_an_empty_list_a_failure() {
        use kvmnet_protocol::testing::FakeRunner;
        use kvmnet_protocol::{AnsibleFlags, Output};
        // virsh 9.0 over ssh without a polkit agent, on a host without guests or networks.
        let noise = "Error registering authentication agent: GDBus.Error:org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.PolicyKit1 was not provided by any .service files (g-dbus-error-quark, 2)\n";
        let mark = virsh::marker(&kvmnet_protocol::testing::first_random_hex(
            virsh::MARKER_BYTES,
        ));
        let argv = virsh::batch_argv("qemu:///system", &names_commands(true), &mark);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = Output {
            rc: 0,
            stdout: mark.clone(),
            stderr: noise.into(),
        };
        let runner = FakeRunner::new().expect(&argv, out.clone());
        let mut ctx = Ctx::new(AnsibleFlags::default(), Box::new(runner));
        let inv = read(&mut ctx, "qemu:///system", true).unwrap();
        assert!(inv.networks.is_empty() && inv.domains.is_empty());
        let err = format!("{noise}error: failed to list networks\n");
        let runner = FakeRunner::new().expect(&argv, Output { stderr: err, ..out });
        let mut ctx = Ctx::new(AnsibleFlags::default(), Box::new(runner));
        let e = read(&mut ctx, "qemu:///system", true).unwrap_err();
        assert_eq!(
            e.msg,
            "cannot list the libvirt networks at qemu:///system: failed to list networks"
        );
    }

    #[test]
    fn a_domain_reads_from_its_sections_and_a_vanished_one_is_none() {
        let secs = [
            DOMINFO.to_string(),
            "<domain type='kvm'><name>vm-private</name></domain>".to_string(),
            "<domain type='kvm' id='2'><name>vm-private</name></domain>".to_string(),
        ];
        let d = parse_domain("vm-private", &secs, "").unwrap().unwrap();
        assert_eq!(
            (d.state.as_str(), d.persistent, d.autostart),
            ("running", true, false)
        );
        assert!(d.live.is_some());
        let gone = [String::new(), String::new(), String::new()];
        let stderr = "error: failed to get domain 'vm-x'\nerror: Domain not found: no domain with matching name 'vm-x'\n";
        assert!(parse_domain("vm-x", &gone, stderr).unwrap().is_none());
        let e = parse_domain("vm-x", &gone, "error: access denied\n").unwrap_err();
        assert!(e.msg.contains("access denied"), "{}", e.msg);
    }
}
