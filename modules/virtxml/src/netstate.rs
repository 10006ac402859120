//! What libvirt says about one network, read in ONE virsh process: `net-info` (active,
//! persistent, autostart, uuid), the inactive definition and the live one.

use crate::virsh;
use crate::Element;
use kvmnet_protocol::{Ctx, Error, Result};

#[derive(Debug, Clone, Default)]
pub struct NetState {
    pub exists: bool,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    pub uuid: Option<String>,
    /// The bridge libvirt reports (`Bridge:` of net-info), when it has one.
    pub bridge: Option<String>,
    /// The persistent definition (for a transient network: its live one).
    pub inactive: Option<Element>,
    /// The same, exactly as virsh printed it.
    pub inactive_text: String,
    /// The running definition (= inactive for a stopped network).
    pub live: Option<Element>,
}

/// The virsh commands of the query, in order.
pub fn query_commands(name: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["net-info", "--network", name]),
        v(&["net-dumpxml", "--inactive", "--network", name]),
        v(&["net-dumpxml", "--network", name]),
    ]
}

fn yes(v: Option<&String>) -> bool {
    v.is_some_and(|s| s == "yes")
}

/// `net-info` output: `Key:   value` lines.
pub fn parse_info(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn xml_section(what: &str, text: &str) -> Result<Option<Element>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Element::parse(text)
        .map(Some)
        .map_err(|e| Error::bug(format!("cannot read virsh's {what} XML: {}", e.msg)))
}

/// Read the network's state (one virsh process).
pub fn read(ctx: &mut Ctx, uri: &str, name: &str) -> Result<NetState> {
    let cmds = query_commands(name);
    let (sections, stderr) = virsh::run_batch(ctx, uri, &cmds)?;
    parse(name, &sections, &stderr)
}

/// Turn the query's sections (and virsh's stderr) into a state.
pub fn parse(name: &str, sections: &[String], stderr: &str) -> Result<NetState> {
    let info = parse_info(&sections[0]);
    let get = |k: &str| info.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    if get("Name").is_none() {
        if stderr.contains("Network not found") {
            return Ok(NetState::default());
        }
        return Err(Error::new(
            kvmnet_protocol::ErrorKind::CommandFailed,
            format!(
                "cannot read libvirt network '{name}': {}",
                stderr
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("virsh printed nothing")
            ),
        )
        .with("stderr", stderr.to_string()));
    }
    let inactive = xml_section("inactive", &sections[1])?;
    let live = xml_section("live", &sections[2])?;
    if inactive.is_none() || live.is_none() {
        return Err(Error::new(
            kvmnet_protocol::ErrorKind::CommandFailed,
            format!(
                "cannot read the definition of libvirt network '{name}': {}",
                stderr.trim()
            ),
        )
        .with("stderr", stderr.to_string()));
    }
    Ok(NetState {
        exists: true,
        active: yes(get("Active")),
        persistent: yes(get("Persistent")),
        autostart: yes(get("Autostart")),
        uuid: get("UUID").cloned(),
        bridge: get("Bridge").cloned(),
        inactive,
        inactive_text: sections[1].clone(),
        live,
    })
}
