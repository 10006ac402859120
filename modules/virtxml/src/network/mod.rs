//! What kvmnet knows of libvirt network definitions (owned by libvirt_net): libvirt's
//! rewrites and added defaults ([`respell`]), so that the definition a user wrote and the
//! one libvirt stores compare equal when they mean the same; libvirt's layout, so a diff
//! shows only what changes ([`layout`]); which values libvirt picks by itself and a
//! redefinition must keep; where two definitions differ, by dotted path
//! ([`differences`]); and a summary for results.

mod differences;
pub mod layout;
pub mod respell;

pub use differences::differences;
pub use layout::{align, insert_ordered, libvirt_layout};
pub use respell::respell;

use crate::normalize;
use crate::tree::Element;

/// Forward modes in which libvirt runs its own bridge (and picks its name and MAC when
/// the definition gives none). `isolated` is kvmnet's name for "no `<forward>`".
pub const OWN_BRIDGE_MODES: &[&str] = &["nat", "route", "open", "isolated"];

/// Every forward mode, as the `forward` option spells it.
pub const FORWARD_MODES: &[&str] = &[
    "nat",
    "route",
    "open",
    "bridge",
    "private",
    "vepa",
    "passthrough",
    "hostdev",
    "isolated",
];

/// libvirt's default NAT port range, added to live definitions.
const NAT_PORTS: (&str, &str) = ("1024", "65535");

/// The forward mode as kvmnet names it: `isolated` without `<forward>`, and libvirt's
/// default `nat` for a `<forward>` without a mode.
pub fn forward_mode(net: &Element) -> String {
    match net.child("forward") {
        None => "isolated".into(),
        Some(f) => f.attr("mode").unwrap_or("nat").to_string(),
    }
}

fn own_bridge(net: &Element) -> bool {
    OWN_BRIDGE_MODES.contains(&forward_mode(net).as_str())
}

/// The pool devices of `<forward>`: its `<interface dev>` list, or its `dev` attribute
/// (libvirt's short form, which it rewrites into a one-element list).
pub fn forward_interfaces(net: &Element) -> Vec<String> {
    let Some(f) = net.child("forward") else {
        return Vec::new();
    };
    let list: Vec<String> = f
        .children_named("interface")
        .filter_map(|i| i.attr("dev"))
        .map(str::to_string)
        .collect();
    if !list.is_empty() {
        return list;
    }
    if f.child("pf").is_none() {
        if let Some(d) = f.attr("dev") {
            return vec![d.to_string()];
        }
    }
    Vec::new()
}

/// The SR-IOV physical function of a hostdev/passthrough pool.
pub fn forward_pf(net: &Element) -> Option<String> {
    net.path("forward/pf")?.attr("dev").map(str::to_string)
}

/// `<bridge name>`: libvirt's own bridge (nat/route/open/isolated) or the host bridge
/// (forward bridge).
pub fn bridge_name(net: &Element) -> Option<String> {
    net.child("bridge")?.attr("name").map(str::to_string)
}

pub fn uuid(net: &Element) -> Option<String> {
    net.child("uuid")
        .map(|u| u.text.trim().to_string())
        .filter(|u| !u.is_empty())
}

pub fn name(net: &Element) -> Option<String> {
    net.child("name").map(|n| n.text.trim().to_string())
}

/// Host devices a definition points at, as (what, device): libvirt accepts a definition
/// naming a device the host lacks, and guests fail later.
pub fn referenced_devices(net: &Element) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mode = forward_mode(net);
    if mode == "bridge" {
        if let Some(b) = bridge_name(net) {
            out.push(("bridge", b));
        }
    }
    for i in forward_interfaces(net) {
        out.push(("interface", i));
    }
    if let Some(pf) = forward_pf(net) {
        out.push(("pf", pf));
    }
    out
}

/// An IPv4 netmask as a prefix length (`255.255.255.0` → 24); None unless contiguous.
pub fn netmask_prefix(mask: &str) -> Option<u32> {
    let ip: std::net::Ipv4Addr = mask.trim().parse().ok()?;
    let bits = u32::from(ip);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones)
}

/// The canonical form of one network definition, for comparisons only: libvirt's
/// spelling ([`respell`]), without what only a running network's XML shows (connection
/// counters, the VFs found under a PF, the default NAT port range), with netmasks as
/// prefixes, and with attribute and child order made irrelevant. Used for both sides of
/// every comparison (desired vs inactive, live vs inactive).
pub fn canonical(net: &Element) -> Element {
    let mut n = respell(net);
    normalize::remove_attr_everywhere(&mut n, "connections");
    if let Some(f) = n.child_mut("forward") {
        if f.child("pf").is_some() {
            // The live XML lists the VFs libvirt found under the PF.
            f.remove_children("interface");
        }
        // `dev` only repeats the pool's first device.
        f.remove_attr("dev");
        // The live XML of a NAT network carries the default port range.
        if let Some(nat) = f.child_mut("nat") {
            nat.children.retain(|p| {
                !(p.name == "port"
                    && p.attr("start") == Some(NAT_PORTS.0)
                    && p.attr("end") == Some(NAT_PORTS.1)
                    && p.attrs.len() == 2)
            });
        }
        f.children
            .retain(|c| !(c.name == "nat" && c.children.is_empty() && c.attrs.is_empty()));
    }
    for ip in n.children.iter_mut().filter(|c| c.name == "ip") {
        normalize::remove_default_attr(ip, "family", "ipv4");
        if ip.attr("family") != Some("ipv6") {
            if let Some(p) = ip.attr("netmask").and_then(netmask_prefix) {
                ip.remove_attr("netmask");
                ip.set_attr("prefix", &p.to_string());
            }
        }
    }
    normalize::canonical(&mut n);
    n
}

/// Both sides of "does the current definition already say what is desired?", brought
/// to canonical form. What libvirt chose by itself because the desired definition is
/// silent (uuid, the generated MAC and bridge name of a network with its own bridge) is
/// left out of the current side; anything else the current definition has and the
/// desired one lacks remains a difference.
pub fn comparable(desired: &Element, current: &Element) -> (Element, Element) {
    let mut d = desired.clone();
    let mut c = current.clone();
    d.remove_children("uuid");
    c.remove_children("uuid");
    if own_bridge(&d) && own_bridge(&c) {
        if d.child("mac").is_none() {
            c.remove_children("mac");
        }
        if bridge_name(&d).is_none() {
            if let Some(b) = c.child_mut("bridge") {
                b.remove_attr("name");
            }
        }
    }
    (canonical(&d), canonical(&c))
}

/// True when `desired` and `current` define the same network.
pub fn same_definition(desired: &Element, current: &Element) -> bool {
    let (d, c) = comparable(desired, current);
    d == c
}

/// True when a running network's live definition still matches its inactive one.
pub fn live_matches(live: &Element, inactive: &Element) -> bool {
    same_definition(inactive, live)
}

/// The definition to hand to `net-define`: the desired one plus what libvirt chose for
/// the existing network and the desired one leaves open — its uuid (libvirt refuses a
/// redefinition without it) and, for a network with its own bridge, the bridge name and
/// MAC (so a redefinition does not move guests to a new bridge or MAC), with libvirt's
/// default bridge attributes so the result reads as libvirt will store it.
pub fn carry_over(desired: &Element, current: Option<&Element>) -> Element {
    let mut d = desired.clone();
    let Some(cur) = current else {
        return d;
    };
    if d.child("uuid").is_none() {
        if let Some(u) = uuid(cur) {
            insert_ordered(&mut d, Element::new("uuid").with_text(&u));
        }
    }
    if own_bridge(&d) && own_bridge(cur) {
        if let Some(cb) = cur.child("bridge") {
            if d.child("bridge").is_none() {
                insert_ordered(&mut d, Element::new("bridge"));
            }
            if let Some(db) = d.child_mut("bridge") {
                for (key, default) in [("name", None), ("stp", Some("on")), ("delay", Some("0"))] {
                    if db.attr(key).is_some() {
                        continue;
                    }
                    if let Some(v) = cb.attr(key) {
                        if default.is_none_or(|dv| dv == v) {
                            db.set_attr(key, v);
                        }
                    }
                }
            }
            d.children
                .retain(|c| !(c.name == "bridge" && c.attrs.is_empty() && c.children.is_empty()));
        }
        if d.child("mac").is_none() {
            if let Some(m) = cur.child("mac") {
                insert_ordered(&mut d, m.clone());
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Element {
        Element::parse(s).unwrap()
    }

    #[test]
    fn private_pool_rewrite_compares_equal() {
        let want = p("<network><name>vtap</name><forward mode='private'><interface dev='ens32'/></forward></network>");
        let stored = p("<network>\n  <name>vtap</name>\n  <uuid>2873eace-4cac-4ff0-bbe8-8de3f98df617</uuid>\n  <forward dev='ens32' mode='private'>\n    <interface dev='ens32'/>\n  </forward>\n</network>\n");
        assert!(same_definition(&want, &stored));
        let short = p("<network><name>vtap</name><forward mode='private' dev='ens32'/></network>");
        assert!(same_definition(&short, &stored));
        assert_eq!(forward_interfaces(&short), vec!["ens32"]);
        let other = p("<network><name>vtap</name><forward mode='private'><interface dev='ens33'/></forward></network>");
        assert!(!same_definition(&other, &stored));
        let (d, c) = comparable(&other, &stored);
        assert_eq!(differences(&d, &c), vec!["forward.interface.dev"]);
    }

    #[test]
    fn nat_defaults_are_libvirts_own() {
        let want = p("<network><name>n</name><forward mode='nat'/><ip address='192.168.150.1' prefix='24'><dhcp><range start='192.168.150.10' end='192.168.150.99'/></dhcp></ip></network>");
        let stored = p("<network>\n  <name>n</name>\n  <uuid>u-1</uuid>\n  <forward mode='nat'>\n    <nat>\n      <port start='1024' end='65535'/>\n    </nat>\n  </forward>\n  <bridge name='virbr1' stp='on' delay='0'/>\n  <mac address='52:54:00:AB:cd:ef'/>\n  <ip address='192.168.150.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='192.168.150.10' end='192.168.150.99'/>\n    </dhcp>\n  </ip>\n</network>\n");
        assert!(same_definition(&want, &stored));
        // A bridge name the user gives is compared.
        let named = p("<network><name>n</name><forward mode='nat'/><bridge name='virbr9'/><ip address='192.168.150.1' prefix='24'><dhcp><range start='192.168.150.10' end='192.168.150.99'/></dhcp></ip></network>");
        assert!(!same_definition(&named, &stored));
        // Something the stored definition has and the desired one lacks is a difference.
        let no_dhcp = p("<network><name>n</name><forward mode='nat'/><ip address='192.168.150.1' prefix='24'/></network>");
        assert!(!same_definition(&no_dhcp, &stored));
        // stp off is not the default.
        let stp_off = p("<network><name>n</name><forward/><bridge stp='off'/><ip address='192.168.150.1' prefix='24'><dhcp><range start='192.168.150.10' end='192.168.150.99'/></dhcp></ip></network>");
        assert!(!same_definition(&stp_off, &stored));
    }

    #[test]
    fn carry_over_keeps_uuid_bridge_and_mac() {
        let stored = p("<network><name>n</name><uuid>u-1</uuid><forward mode='nat'/><bridge name='virbr1' stp='off' delay='0'/><mac address='52:54:00:ab:cd:ef'/><ip address='10.0.0.1' prefix='24'/></network>");
        let want = p("<network><name>n</name><forward mode='route'/><ip address='10.0.0.1' prefix='24'/></network>");
        let d = carry_over(&want, Some(&stored));
        assert_eq!(uuid(&d).as_deref(), Some("u-1"));
        let b = d.child("bridge").unwrap();
        assert_eq!(b.attr("name"), Some("virbr1"));
        assert_eq!(b.attr("stp"), None, "a non-default stp is not carried over");
        assert_eq!(b.attr("delay"), Some("0"));
        assert_eq!(
            d.children
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            vec!["name", "uuid", "forward", "bridge", "mac", "ip"]
        );
        // Host bridge of a forward-bridge network is never carried into a NAT network.
        let host = p("<network><name>n</name><uuid>u-2</uuid><forward mode='bridge'/><bridge name='br0'/></network>");
        let d = carry_over(&want, Some(&host));
        assert!(d.child("bridge").is_none());
        assert_eq!(uuid(&d).as_deref(), Some("u-2"));
    }

    #[test]
    fn live_counters_and_pf_vfs_are_ignored() {
        let inactive = p("<network><name>h</name><uuid>u</uuid><forward mode='hostdev' managed='yes'><pf dev='enp1s0'/></forward></network>");
        let live = p("<network connections='2'><name>h</name><uuid>u</uuid><forward mode='hostdev' managed='yes'><pf dev='enp1s0'/><interface dev='enp1s0v0' connections='1'/></forward></network>");
        assert!(live_matches(&live, &inactive));
        let unmanaged = p(
            "<network><name>h</name><forward mode='hostdev'><pf dev='enp1s0'/></forward></network>",
        );
        assert!(!same_definition(&unmanaged, &inactive));
        assert_eq!(
            referenced_devices(&inactive),
            vec![("pf", "enp1s0".to_string())]
        );
    }

    #[test]
    fn netmask_prefix_only_for_contiguous_masks() {
        assert_eq!(netmask_prefix("255.255.255.0"), Some(24));
        assert_eq!(netmask_prefix("255.255.255.255"), Some(32));
        assert_eq!(netmask_prefix("0.0.0.0"), Some(0));
        assert_eq!(netmask_prefix("255.0.255.0"), None);
        assert_eq!(netmask_prefix("x"), None);
    }

    #[test]
    fn modes_and_order_insensitive() {
        assert_eq!(
            forward_mode(&p("<network><name>a</name></network>")),
            "isolated"
        );
        assert_eq!(forward_mode(&p("<network><forward/></network>")), "nat");
        let a = p("<network><bridge name='br0'/><forward mode='bridge'/><name>a</name></network>");
        let b = p("<network><name>a</name><forward mode='bridge'/><bridge name='br0'/></network>");
        assert!(same_definition(&a, &b));
        assert_eq!(referenced_devices(&a), vec![("bridge", "br0".to_string())]);
    }
}
