//! One libvirt domain (guest) as the modules read it, in ONE virsh process: its
//! persistent and live definitions, the defined and active networks, and optionally one
//! network's definition (to know how interfaces on it are backed).

use crate::interface;
use crate::virsh;
use crate::Element;
use kvmnet_protocol::{Ctx, Error, Result};

/// What the host holds for one domain.
#[derive(Debug, Clone)]
pub struct DomainState {
    /// `dumpxml --inactive`.
    pub persistent: Element,
    /// `dumpxml` of a running (or paused) guest; None when it is shut off.
    pub live: Option<Element>,
    /// Every defined network.
    pub networks: Vec<String>,
    /// Active networks.
    pub active_networks: Vec<String>,
    /// `net-dumpxml` of the network asked for, when it exists.
    pub network: Option<Element>,
}

fn names(section: &str) -> Vec<String> {
    section
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn s(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

/// The virsh commands of the one read batch. Names go as values of `--domain` and
/// `--network`, never as bare arguments.
pub fn read_commands(domain: &str, network: Option<&str>) -> Vec<Vec<String>> {
    let mut cmds = vec![
        s(&["dumpxml", "--inactive", "--domain", domain]),
        s(&["dumpxml", "--domain", domain]),
        s(&["net-list", "--all", "--name"]),
        s(&["net-list", "--name"]),
    ];
    if let Some(n) = network {
        cmds.push(s(&["net-dumpxml", "--network", n]));
    }
    cmds
}

/// Read domain `domain` at `uri` (and network `network`'s definition) in one virsh
/// process. An unknown domain is an error on option `domain` that lists the defined ones
/// (one more virsh process, on that failure only).
pub fn read(ctx: &mut Ctx, uri: &str, domain: &str, network: Option<&str>) -> Result<DomainState> {
    let cmds = read_commands(domain, network);
    let (sec, stderr) = virsh::run_batch(ctx, uri, &cmds)?;
    if sec[0].trim().is_empty() {
        let (doms, _) =
            virsh::run_batch(ctx, uri, &[s(&["list", "--all", "--name"])]).unwrap_or_default();
        let all = doms.first().map(|d| names(d));
        return Err(domain_error(uri, domain, &stderr, all));
    }
    let persistent =
        Element::parse(&sec[0]).map_err(|e| e.context("reading the domain definition"))?;
    let live = Element::parse(&sec[1]).ok().filter(interface::is_running);
    let network = sec
        .get(4)
        .filter(|x| !x.trim().is_empty())
        .map(|x| Element::parse(x))
        .transpose()?;
    Ok(DomainState {
        persistent,
        live,
        networks: names(&sec[2]),
        active_networks: names(&sec[3]),
        network,
    })
}

/// Read the domain's persistent and live definitions again (after a change), in one
/// virsh process.
pub fn reread(ctx: &mut Ctx, uri: &str, domain: &str) -> Result<(Element, Option<Element>)> {
    let cmds = read_commands(domain, None)[..2].to_vec();
    let (sec, stderr) = virsh::run_batch(ctx, uri, &cmds)?;
    if sec[0].trim().is_empty() {
        return Err(domain_error(uri, domain, &stderr, None));
    }
    let persistent =
        Element::parse(&sec[0]).map_err(|e| e.context("reading the domain definition"))?;
    let live = Element::parse(&sec[1]).ok().filter(interface::is_running);
    Ok((persistent, live))
}

/// Why a domain's definition could not be read: not defined (listing those that are), or
/// libvirt's own error.
fn domain_error(uri: &str, domain: &str, stderr: &str, all: Option<Vec<String>>) -> Error {
    let err = stderr.trim();
    if !err.is_empty() && !err.contains("failed to get domain") {
        return Error::invalid(format!(
            "reading domain '{domain}' at {uri} failed: {}",
            err.lines()
                .next()
                .unwrap_or(err)
                .trim_start_matches("error: ")
        ));
    }
    let listed = match all {
        Some(d) if !d.is_empty() => format!(" (defined: {})", d.join(", ")),
        Some(_) => " (no domain is defined there)".to_string(),
        None => String::new(),
    };
    Error::invalid(format!(
        "option 'domain': no domain '{domain}' is defined at {uri}{listed}"
    ))
}
