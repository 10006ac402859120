//! libvirt's own spelling of a network definition: what its parser and formatter
//! (`src/conf/network_conf.c`) rewrite when a definition is stored, applied here so the
//! definition a user wrote reads as libvirt will store it. Every rewrite keeps the
//! document's structure and order (the diff of a change shows only the change); each is
//! one function with a unit case below. Measured against libvirt 7.0, 9.0 and 11.3 by
//! tests/test_net_corpus.py. This is the one place that knows libvirt's spelling of a
//! network (MAC case included); `normalize` holds only what is not about spelling.

use crate::network::{forward_mode, OWN_BRIDGE_MODES};
use crate::tree::Element;
use std::net::IpAddr;

/// The definition in libvirt's spelling.
pub fn respell(net: &Element) -> Element {
    let mut n = net.clone();
    network_attributes(&mut n);
    uuid_lower_case(&mut n);
    forward(&mut n);
    bridge(&mut n);
    walk(&mut n, "", &mut |el, parent| {
        addresses(el, parent);
        numbers(el, parent);
        lease(el);
        srv(el);
        portgroup(el);
        mac_lower_case(el);
        pci_address(el, parent);
    });
    n
}

/// Visit every element with its parent's name.
fn walk(el: &mut Element, parent: &str, f: &mut impl FnMut(&mut Element, &str)) {
    f(el, parent);
    let name = el.name.clone();
    for c in &mut el.children {
        walk(c, &name, f);
    }
}

/// `<network ipv6='no'>` is the default and not written.
fn network_attributes(n: &mut Element) {
    if n.attr("ipv6") == Some("no") {
        n.remove_attr("ipv6");
    }
}

/// libvirt prints a UUID in lower case.
fn uuid_lower_case(n: &mut Element) {
    if let Some(u) = n.child_mut("uuid") {
        u.text = u.text.trim().to_ascii_lowercase();
    }
}

/// `<forward>`: the mode defaults to nat; `dev='X'` and a pool `<interface dev>` list are
/// one thing (libvirt writes both: `dev` = the first pool device, unless the pool is an
/// SR-IOV PF's); hostdev networks get `managed='no'` when not managed; a `<nat>` with
/// nothing in it is not written.
fn forward(n: &mut Element) {
    let Some(f) = n.child_mut("forward") else {
        return;
    };
    if f.attr("mode").is_none() {
        f.set_attr("mode", "nat");
    }
    if f.attr("mode") == Some("hostdev") && f.attr("managed").is_none() {
        f.set_attr("managed", "no");
    }
    if f.child("pf").is_none() {
        let first = f
            .children_named("interface")
            .find_map(|i| i.attr("dev"))
            .map(str::to_string);
        match (first, f.attr("dev").map(str::to_string)) {
            (Some(first), _) => f.set_attr("dev", &first),
            (None, Some(dev)) => f
                .children
                .push(Element::new("interface").with_attr("dev", &dev)),
            (None, None) => {}
        }
    }
    f.children
        .retain(|c| !(c.name == "nat" && c.children.is_empty() && c.attrs.is_empty()));
}

/// `<bridge>`: `stp` is on unless it says `off` (so `yes` is `on`); networks with their
/// own bridge (nat, route, open, isolated) always carry `stp` and `delay`;
/// `macTableManager='default'` is not written.
fn bridge(n: &mut Element) {
    let own = OWN_BRIDGE_MODES.contains(&forward_mode(n).as_str());
    if own && n.child("bridge").is_none() {
        let at = n
            .children
            .iter()
            .position(|c| c.name == "ip" || c.name == "dns" || c.name == "domain")
            .unwrap_or(n.children.len());
        n.children.insert(at, Element::new("bridge"));
    }
    let Some(b) = n.child_mut("bridge") else {
        return;
    };
    if let Some(stp) = b.attr("stp").map(str::to_string) {
        b.set_attr("stp", if stp == "off" { "off" } else { "on" });
    } else if own {
        b.set_attr("stp", "on");
    }
    if own && b.attr("delay").is_none() {
        b.set_attr("delay", "0");
    }
    if b.attr("macTableManager") == Some("default") {
        b.remove_attr("macTableManager");
    }
}

/// Attributes holding an IP address, by element: libvirt prints them in their canonical
/// text (IPv6 lower case and compressed).
const ADDRESS_ATTRS: &[(&str, &[&str])] = &[
    ("ip", &["address", "netmask"]),
    ("range", &["start", "end"]),
    ("host", &["ip"]),
    ("forwarder", &["addr"]),
    ("route", &["address", "netmask", "gateway"]),
    ("bootp", &["server"]),
];

fn addresses(el: &mut Element, parent: &str) {
    let attrs: &[&str] = match (el.name.as_str(), parent) {
        // <nat><address start end>
        ("address", "nat") => &["start", "end"],
        (name, _) => ADDRESS_ATTRS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .unwrap_or(&[]),
    };
    for a in attrs {
        let canonical = el
            .attr(a)
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_string());
        if let Some(c) = canonical {
            el.set_attr(a, &c);
        }
    }
}

/// Attributes libvirt reads as numbers and prints with `%u`/`%d`: `024` is `24`.
const NUMBER_ATTRS: &[(&str, &[&str])] = &[
    ("mtu", &["size"]),
    ("ip", &["prefix"]),
    ("route", &["prefix", "metric"]),
    ("bridge", &["delay"]),
    ("inbound", &["average", "peak", "burst", "floor"]),
    ("outbound", &["average", "peak", "burst", "floor"]),
    ("srv", &["port", "priority", "weight"]),
    ("tag", &["id"]),
    ("lease", &["expiry"]),
];

fn numbers(el: &mut Element, parent: &str) {
    let attrs: &[&str] = match (el.name.as_str(), parent) {
        ("port", "nat") => &["start", "end"],
        (name, _) => NUMBER_ATTRS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .unwrap_or(&[]),
    };
    for a in attrs {
        let n = el.attr(a).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = n {
            el.set_attr(a, &n.to_string());
        }
    }
}

/// `<lease>`: the unit defaults to minutes; an infinite lease (`expiry='0'`) has none.
fn lease(el: &mut Element) {
    if el.name != "lease" {
        return;
    }
    if el.attr("expiry") == Some("0") {
        el.remove_attr("unit");
    } else if el.attr("unit").is_none() {
        el.set_attr("unit", "minutes");
    }
}

/// `<srv>`: a port, priority or weight of 0 is not written.
fn srv(el: &mut Element) {
    if el.name != "srv" {
        return;
    }
    for a in ["port", "priority", "weight"] {
        if el.attr(a) == Some("0") {
            el.remove_attr(a);
        }
    }
}

/// `<portgroup default='no'>` is the default and not written.
fn portgroup(el: &mut Element) {
    if el.name == "portgroup" && el.attr("default") == Some("no") {
        el.remove_attr("default");
    }
}

/// `<mac address>` in lower case.
fn mac_lower_case(el: &mut Element) {
    if el.name == "mac" {
        if let Some(a) = el.attr("address").map(str::to_ascii_lowercase) {
            el.set_attr("address", &a);
        }
    }
}

/// A number as libvirt's parser reads it (`strtoul` with base 0, as `virXMLPropUInt` and
/// `virStrToLong_uip` do): `0x`/`0X` hex, a leading `0` octal, else decimal.
fn c_number(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if v.len() > 1 && v.starts_with('0') {
        u64::from_str_radix(&v[1..], 8).ok()
    } else {
        v.parse().ok()
    }
}

/// A hostdev pool's `<forward><address type='pci'>`: libvirt prints it as
/// `virPCIDeviceAddressFormat` does (domain `0x%04x`, bus and slot `0x%02x`, function
/// `0x%x`; one left out is 0) and does not keep `multifunction` (measured on 7.0, 9.0
/// and 11.3: `bus='3' slot='16'` is stored as `bus='0x03' slot='0x10'`, `bus='010'` as
/// `bus='0x08'`). A value libvirt cannot read is left as written (libvirt refuses it).
fn pci_address(el: &mut Element, parent: &str) {
    if el.name != "address" || parent != "forward" || el.attr("type") != Some("pci") {
        return;
    }
    let fields = [("domain", 4), ("bus", 2), ("slot", 2), ("function", 1)];
    let parsed: Option<Vec<u64>> = fields
        .iter()
        .map(|(a, _)| el.attr(a).map_or(Some(0), c_number))
        .collect();
    let Some(values) = parsed else {
        return;
    };
    // In libvirt's order: type, domain, bus, slot, function.
    let rest: Vec<(String, String)> = el
        .attrs
        .iter()
        .filter(|(k, _)| k != "type" && k != "multifunction" && fields.iter().all(|(a, _)| k != a))
        .cloned()
        .collect();
    el.attrs = vec![("type".to_string(), "pci".to_string())];
    for ((a, width), v) in fields.iter().zip(values) {
        el.attrs.push((a.to_string(), format!("0x{v:0width$x}")));
    }
    el.attrs.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(xml: &str) -> String {
        respell(&Element::parse(xml).unwrap()).to_xml()
    }
    fn p(xml: &str) -> String {
        Element::parse(xml).unwrap().to_xml()
    }

    #[test]
    fn ipv6_no_is_not_written() {
        assert_eq!(
            r("<network ipv6='no'><name>n</name></network>"),
            p("<network><name>n</name><bridge stp='on' delay='0'/></network>")
        );
        assert!(r("<network ipv6='yes'><name>n</name></network>").contains("ipv6='yes'"));
    }

    #[test]
    fn uuid_in_lower_case() {
        assert!(r("<network><uuid>ABCDEF00-0000-4000-8000-000000000001</uuid><forward mode='bridge'/></network>")
            .contains("<uuid>abcdef00-0000-4000-8000-000000000001</uuid>"));
    }

    #[test]
    fn forward_without_mode_is_nat() {
        assert!(r("<network><forward/></network>").contains("<forward mode='nat'/>"));
    }

    #[test]
    fn forward_dev_and_the_pool_are_one() {
        let short = r("<network><forward mode='private' dev='ens32'/></network>");
        assert!(
            short.contains("<forward mode='private' dev='ens32'>\n    <interface dev='ens32'/>"),
            "{short}"
        );
        let pool = r("<network><forward mode='vepa'><interface dev='a'/><interface dev='b'/></forward></network>");
        assert!(pool.contains("<forward mode='vepa' dev='a'>"), "{pool}");
        // A PF's pool has no dev.
        let pf = r("<network><forward mode='passthrough'><pf dev='p'/></forward></network>");
        assert!(
            !pf.contains("dev='p' mode") && !pf.contains("<interface"),
            "{pf}"
        );
    }

    #[test]
    fn hostdev_is_unmanaged_unless_said() {
        assert!(
            r("<network><forward mode='hostdev'><pf dev='p'/></forward></network>")
                .contains("managed='no'")
        );
        assert!(r(
            "<network><forward mode='hostdev' managed='yes'><pf dev='p'/></forward></network>"
        )
        .contains("managed='yes'"));
    }

    #[test]
    fn an_empty_nat_is_not_written() {
        assert!(!r("<network><forward mode='nat'><nat/></forward></network>").contains("<nat"));
    }

    #[test]
    fn own_bridges_carry_stp_and_delay_and_stp_is_on_unless_off() {
        assert!(
            r("<network><forward mode='nat'/></network>").contains("<bridge stp='on' delay='0'/>")
        );
        assert!(r("<network><bridge name='v' stp='yes'/></network>")
            .contains("<bridge name='v' stp='on' delay='0'/>"));
        assert!(
            r("<network><bridge stp='off' delay='2'/></network>").contains("stp='off' delay='2'")
        );
        // A host bridge (forward bridge) gets neither.
        assert!(
            r("<network><forward mode='bridge'/><bridge name='br0'/></network>")
                .contains("<bridge name='br0'/>")
        );
        assert!(
            !r("<network><bridge name='v' macTableManager='default'/></network>")
                .contains("macTableManager")
        );
    }

    #[test]
    fn ip_addresses_in_canonical_text() {
        let x = r("<network><ip family='ipv6' address='FD00:0:0::1' prefix='64'><dhcp><range start='FD00::0010' end='fd00:0000::00ff'/><host id='0:1' ip='FD00::5'/></dhcp></ip><dns><forwarder addr='2001:DB8::53'/><host ip='FD00::9'><hostname>h</hostname></host></dns><route family='ipv6' address='2001:DB8:CA2:3::' prefix='64' gateway='FD00::2'/></network>");
        for want in [
            "address='fd00::1'",
            "start='fd00::10'",
            "end='fd00::ff'",
            "ip='fd00::5'",
            "addr='2001:db8::53'",
            "<host ip='fd00::9'>",
            "address='2001:db8:ca2:3::'",
            "gateway='fd00::2'",
        ] {
            assert!(x.contains(want), "{want} in {x}");
        }
        let nat = r("<network><forward mode='nat'><nat><address start='192.0.2.10' end='192.0.2.20'/></nat></forward></network>");
        assert!(nat.contains("start='192.0.2.10'"), "{nat}");
    }

    #[test]
    fn numbers_without_leading_zeros() {
        let x = r("<network><mtu size='09000'/><ip address='10.0.0.1' prefix='024'/><bandwidth><inbound average='01000' peak='+5000'/></bandwidth></network>");
        assert!(
            x.contains("<mtu size='9000'/>")
                && x.contains("prefix='24'")
                && x.contains("average='1000'"),
            "{x}"
        );
        let nat = r("<network><forward mode='nat'><nat><port start='01024' end='2048'/></nat></forward></network>");
        assert!(nat.contains("<port start='1024' end='2048'/>"), "{nat}");
    }

    #[test]
    fn lease_unit_defaults_to_minutes_and_infinite_has_none() {
        assert!(r("<network><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'><lease expiry='60'/></range></dhcp></ip></network>").contains("<lease expiry='60' unit='minutes'/>"));
        assert!(r("<network><ip address='10.0.0.1' prefix='24'><dhcp><host mac='52:54:00:00:00:01' ip='10.0.0.5'><lease expiry='0' unit='hours'/></host></dhcp></ip></network>").contains("<lease expiry='0'/>"));
    }

    #[test]
    fn srv_zero_values_are_not_written() {
        let x = r("<network><dns><srv service='name' protocol='tcp' domain='d' target='t' port='0' priority='0' weight='10'/></dns></network>");
        assert!(
            x.contains("<srv service='name' protocol='tcp' domain='d' target='t' weight='10'/>"),
            "{x}"
        );
    }

    #[test]
    fn portgroup_default_no_is_not_written() {
        assert!(r("<network><forward mode='bridge'/><bridge name='br0'/><portgroup name='a' default='no'/></network>").contains("<portgroup name='a'/>"));
        assert!(r("<network><forward mode='bridge'/><bridge name='br0'/><portgroup name='a' default='yes'/></network>").contains("default='yes'"));
    }

    #[test]
    fn pci_addresses_of_a_hostdev_pool_as_libvirt_prints_them() {
        let x = r("<network><forward mode='hostdev' managed='yes'><address type='pci' domain='0' bus='3' slot='16' function='1'/><address type='pci' bus='010' slot='0X1F' function='07' multifunction='on'/><address type='pci' domain='0x0001' bus='0xA' slot='0x1' function='0x2'/></forward></network>");
        for want in [
            "<address type='pci' domain='0x0000' bus='0x03' slot='0x10' function='0x1'/>",
            "<address type='pci' domain='0x0000' bus='0x08' slot='0x1f' function='0x7'/>",
            "<address type='pci' domain='0x0001' bus='0x0a' slot='0x01' function='0x2'/>",
        ] {
            assert!(x.contains(want), "{want} in {x}");
        }
        // libvirt's own text stays as it is; what libvirt cannot read is left alone.
        let stored = "<address type='pci' domain='0x0000' bus='0x03' slot='0x10' function='0x1'/>";
        assert!(r(&format!(
            "<network><forward mode='hostdev'>{stored}</forward></network>"
        ))
        .contains(stored));
        let bad = "<address type='pci' bus='08' slot='1'/>";
        assert!(r(&format!(
            "<network><forward mode='hostdev'>{bad}</forward></network>"
        ))
        .contains("bus='08' slot='1'"));
        // Only a pool's addresses: a NAT range's <address> is not a PCI address.
        assert!(r("<network><forward mode='nat'><nat><address start='192.0.2.1' end='192.0.2.9'/></nat></forward></network>").contains("<address start='192.0.2.1' end='192.0.2.9'/>"));
    }

    #[test]
    fn bridge_mac_in_lower_case() {
        assert!(r("<network><mac address='52:54:00:AB:CD:EF'/></network>")
            .contains("52:54:00:ab:cd:ef"));
    }
}
