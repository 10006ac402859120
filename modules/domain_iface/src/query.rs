//! Reading the domain (persistent and live) and the networks in one virsh process.

use crate::params::Params;
use kvmnet_protocol::{Ctx, Error, Result};
use kvmnet_virtxml::{interface, virsh, Element};

/// What the host holds.
#[derive(Debug, Clone)]
pub struct State {
    /// `dumpxml --inactive`.
    pub persistent: Element,
    /// `dumpxml` of a running (or paused) guest; None when it is shut off.
    pub live: Option<Element>,
    /// Every defined network.
    pub networks: Vec<String>,
    /// Active networks.
    pub active_networks: Vec<String>,
    /// `net-dumpxml` of the network named by `source`, when it is one.
    pub source_network: Option<Element>,
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

/// The virsh commands of the one read batch.
pub fn read_commands(domain: &str, source_network: Option<&str>) -> Vec<Vec<String>> {
    let mut cmds = vec![
        s(&["dumpxml", "--inactive", "--domain", domain]),
        s(&["dumpxml", "--domain", domain]),
        s(&["net-list", "--all", "--name"]),
        s(&["net-list", "--name"]),
    ];
    if let Some(n) = source_network {
        cmds.push(s(&["net-dumpxml", "--network", n]));
    }
    cmds
}

/// The network `source` may name: when `type` is network, or omitted (the interface
/// may already be a network one).
pub fn source_network(p: &Params) -> Option<&str> {
    match (p.kind.as_deref(), p.source.as_deref()) {
        (None | Some("network"), Some(n)) if !p.absent() => Some(n),
        _ => None,
    }
}

/// Read everything in one virsh process.
pub fn query(ctx: &mut Ctx, p: &Params) -> Result<State> {
    let net = source_network(p);
    let cmds = read_commands(&p.domain, net);
    let (sections, stderr) = virsh::run_batch(ctx, &p.uri, &cmds)?;
    parse(ctx, p, &sections, &stderr)
}

/// Read the domain again (after a change), in one virsh process.
pub fn reread(ctx: &mut Ctx, p: &Params) -> Result<(Element, Option<Element>)> {
    let cmds = read_commands(&p.domain, None)[..2].to_vec();
    let (sections, stderr) = virsh::run_batch(ctx, &p.uri, &cmds)?;
    let persistent = parse_domain(p, &sections[0], &stderr, None)?;
    let live = Element::parse(&sections[1])
        .ok()
        .filter(interface::is_running);
    Ok((persistent, live))
}

fn parse_domain(p: &Params, xml: &str, stderr: &str, all: Option<Vec<String>>) -> Result<Element> {
    if !xml.trim().is_empty() {
        return Element::parse(xml).map_err(|e| e.context("reading the domain definition"));
    }
    let err = stderr.trim();
    if !err.is_empty() && !err.contains("failed to get domain") {
        return Err(Error::invalid(format!(
            "reading domain '{}' at {} failed: {}",
            p.domain,
            p.uri,
            err.lines()
                .next()
                .unwrap_or(err)
                .trim_start_matches("error: ")
        )));
    }
    let listed = match all {
        Some(d) if !d.is_empty() => format!(" (defined: {})", d.join(", ")),
        Some(_) => " (no domain is defined there)".to_string(),
        None => String::new(),
    };
    Err(Error::invalid(format!(
        "option 'domain': no domain '{}' is defined at {}{listed}",
        p.domain, p.uri
    )))
}

fn parse(ctx: &mut Ctx, p: &Params, sec: &[String], stderr: &str) -> Result<State> {
    if sec[0].trim().is_empty() {
        // Unknown domain (or another error): list the defined ones for the message.
        let (doms, _) =
            virsh::run_batch(ctx, &p.uri, &[s(&["list", "--all", "--name"])]).unwrap_or_default();
        let all = doms.first().map(|d| names(d));
        parse_domain(p, &sec[0], stderr, all)?;
    }
    let persistent = parse_domain(p, &sec[0], stderr, None)?;
    let live = Element::parse(&sec[1]).ok().filter(interface::is_running);
    let source_network = sec
        .get(4)
        .filter(|x| !x.trim().is_empty())
        .map(|x| Element::parse(x))
        .transpose()?;
    Ok(State {
        persistent,
        live,
        networks: names(&sec[2]),
        active_networks: names(&sec[3]),
        source_network,
    })
}
