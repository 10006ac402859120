//! libvirt's layout of a network definition (the order its formatter writes elements and
//! attributes in), and the alignment that makes a diff show only what changes: the
//! definition about to be written is laid out like the stored one, and every part that
//! means the same is taken verbatim from the stored one.

use crate::network::canonical;
use crate::tree::Element;

/// Child order libvirt writes, per parent element (virNetworkDefFormatBuf and friends).
const CHILD_ORDER: &[(&str, &[&str])] = &[
    (
        "network",
        &[
            "name",
            "uuid",
            "title",
            "description",
            "metadata",
            "forward",
            "bridge",
            "mtu",
            "mac",
            "domain",
            "dns",
            "vlan",
            "bandwidth",
            "port",
            "ip",
            "route",
            "virtualport",
            "portgroup",
        ],
    ),
    ("forward", &["driver", "nat", "pf", "interface", "address"]),
    ("nat", &["address", "port"]),
    ("dns", &["forwarder", "txt", "srv", "host"]),
    ("ip", &["tftp", "dhcp"]),
    ("dhcp", &["range", "host", "bootp"]),
    ("portgroup", &["vlan", "virtualport", "bandwidth"]),
    ("bandwidth", &["inbound", "outbound"]),
];

/// Attribute order libvirt writes, per element.
const ATTR_ORDER: &[(&str, &[&str])] = &[
    ("network", &["connections", "ipv6", "trustGuestRxFilters"]),
    ("forward", &["dev", "mode", "managed"]),
    (
        "bridge",
        &["name", "zone", "stp", "delay", "macTableManager"],
    ),
    ("domain", &["name", "localOnly"]),
    ("dns", &["enable", "forwardPlainNames"]),
    ("forwarder", &["domain", "addr"]),
    ("txt", &["name", "value"]),
    (
        "srv",
        &[
            "service", "protocol", "domain", "target", "port", "priority", "weight",
        ],
    ),
    (
        "ip",
        &["family", "address", "netmask", "prefix", "localPtr"],
    ),
    ("range", &["start", "end"]),
    ("host", &["mac", "id", "name", "ip"]),
    ("lease", &["expiry", "unit"]),
    ("bootp", &["file", "server"]),
    ("portgroup", &["name", "default", "trustGuestRxFilters"]),
    // A NAT range's <address start end>, a hostdev pool's <address type='pci' ...>.
    (
        "address",
        &["start", "end", "type", "domain", "bus", "slot", "function"],
    ),
    ("port", &["start", "end"]),
    (
        "route",
        &[
            "family", "address", "netmask", "prefix", "gateway", "metric",
        ],
    ),
    ("inbound", &["average", "peak", "burst", "floor"]),
    ("outbound", &["average", "peak", "burst", "floor"]),
    ("tag", &["id", "nativeMode"]),
];

fn rank_in(table: &[(&str, &[&str])], parent: &str, name: &str) -> usize {
    table
        .iter()
        .find(|(p, _)| *p == parent)
        .and_then(|(_, order)| order.iter().position(|n| *n == name))
        .unwrap_or(usize::MAX)
}

/// Children in libvirt's order (same-named siblings, and elements libvirt's table does
/// not know, keep their order), attributes likewise, all the way down.
pub fn libvirt_layout(el: &Element) -> Element {
    let mut out = el.clone();
    order(&mut out);
    out
}

fn order(el: &mut Element) {
    let name = el.name.clone();
    el.attrs.sort_by_key(|(k, _)| rank_in(ATTR_ORDER, &name, k));
    el.children
        .sort_by_key(|c| rank_in(CHILD_ORDER, &name, &c.name));
    for c in &mut el.children {
        order(c);
    }
}

/// Insert `child` into `<network>` where libvirt writes it.
pub fn insert_ordered(net: &mut Element, child: Element) {
    let r = rank_in(CHILD_ORDER, "network", &child.name);
    let at = net
        .children
        .iter()
        .position(|c| rank_in(CHILD_ORDER, "network", &c.name) > r)
        .unwrap_or(net.children.len());
    net.children.insert(at, child);
}

/// The attribute that tells same-named siblings apart (an `<ip>` by its address, a
/// `<host>` by its MAC or name, ...): used to pair them across two definitions and to name
/// them in messages.
pub fn identity(el: &Element) -> Option<(&'static str, &str)> {
    const KEYS: &[(&str, &[&str])] = &[
        ("ip", &["address", "family"]),
        ("range", &["start"]),
        ("host", &["mac", "id", "name", "ip"]),
        ("portgroup", &["name"]),
        ("route", &["address"]),
        ("interface", &["dev"]),
        ("forwarder", &["addr", "domain"]),
        ("txt", &["name"]),
        ("srv", &["service"]),
        ("tag", &["id"]),
        ("hostname", &[]),
    ];
    let keys = KEYS.iter().find(|(n, _)| *n == el.name)?.1;
    keys.iter().find_map(|k| el.attr(k).map(|v| (*k, v)))
}

/// Whether two elements mean the same: compared through the network's canonical form
/// (an element below `<network>` is compared as the only child of one), so that a netmask
/// and its prefix, or `<forward dev>` and its pool, are the same.
fn same(a: &Element, b: &Element) -> bool {
    if a.name != b.name {
        return false;
    }
    let wrap = |e: &Element| {
        if e.name == "network" {
            e.clone()
        } else {
            Element::new("network").with_child(e.clone())
        }
    };
    canonical(&wrap(a)) == canonical(&wrap(b))
}

/// The counterpart of `a` among `before`'s children not yet taken: an identical one,
/// else one with the same identity, else the first of the same name.
fn counterpart(a: &Element, before: &Element, taken: &[bool]) -> Option<usize> {
    let free = |i: &usize| !taken[*i] && before.children[*i].name == a.name;
    let idx: Vec<usize> = (0..before.children.len()).filter(free).collect();
    idx.iter()
        .copied()
        .find(|i| same(a, &before.children[*i]))
        .or_else(|| {
            let id = identity(a)?;
            idx.iter()
                .copied()
                .find(|i| identity(&before.children[*i]) == Some(id))
        })
        .or_else(|| idx.first().copied())
}

/// The element itself, without its children.
fn shallow(e: &Element) -> Element {
    Element {
        children: Vec::new(),
        ..e.clone()
    }
}

/// Attributes of an element whose children differ: when the element itself means the
/// same (a netmask for its prefix), `before`'s spelling; else `after`'s values in
/// `before`'s order, new ones in libvirt's. (`<forward dev>` repeats the pool's first
/// device, which the comparison leaves out: it must be equal to count as the same.)
fn align_attrs(after: &Element, before: &Element) -> Vec<(String, String)> {
    if same(&shallow(after), &shallow(before)) && after.attr("dev") == before.attr("dev") {
        return before.attrs.clone();
    }
    let mut out: Vec<(String, String)> = before
        .attrs
        .iter()
        .filter_map(|(k, _)| after.attr(k).map(|v| (k.clone(), v.to_string())))
        .collect();
    let mut fresh: Vec<(String, String)> = after
        .attrs
        .iter()
        .filter(|(k, _)| before.attr(k).is_none())
        .cloned()
        .collect();
    fresh.sort_by_key(|(k, _)| rank_in(ATTR_ORDER, &after.name, k));
    out.extend(fresh);
    out
}

/// `after` (the definition about to be written, in libvirt's spelling) laid out like
/// `before` (the stored one): every element that means the same as its counterpart is
/// the counterpart itself; where they differ, attributes keep `before`'s order and new
/// ones follow in libvirt's. A text diff of `before` and the result shows only changes.
pub fn align(after: &Element, before: &Element) -> Element {
    if same(after, before) {
        return before.clone();
    }
    let mut out = Element {
        name: after.name.clone(),
        attrs: Vec::new(),
        children: Vec::new(),
        text: after.text.clone(),
    };
    out.attrs = align_attrs(after, before);
    let mut taken = vec![false; before.children.len()];
    for a in &after.children {
        match counterpart(a, before, &taken) {
            Some(i) => {
                taken[i] = true;
                out.children.push(align(a, &before.children[i]));
            }
            None => out.children.push(libvirt_layout(a)),
        }
    }
    let parent = out.name.clone();
    out.children
        .sort_by_key(|c| rank_in(CHILD_ORDER, &parent, &c.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::respell;

    fn p(s: &str) -> Element {
        Element::parse(s).unwrap()
    }

    #[test]
    fn a_new_definition_reads_in_libvirts_order() {
        let user = p("<network><ip prefix='24' address='10.0.0.1'/><bridge delay='0' name='v1'/><forward mode='nat' dev='eth1'/><name>n</name></network>");
        assert_eq!(
            libvirt_layout(&respell(&user)).to_xml(),
            "<network>\n  <name>n</name>\n  <forward dev='eth1' mode='nat'>\n    <interface dev='eth1'/>\n  </forward>\n  <bridge name='v1' stp='on' delay='0'/>\n  <ip address='10.0.0.1' prefix='24'/>\n</network>\n"
        );
    }

    #[test]
    fn a_one_value_change_shows_as_one_line() {
        // As libvirt 9.0 stores its example NAT network with a forward device.
        let stored = p("<network>\n  <name>nat</name>\n  <uuid>81ff0d90-c91e-6742-64da-4a736edb9a9b</uuid>\n  <forward dev='eth1' mode='nat'>\n    <interface dev='eth1'/>\n  </forward>\n  <bridge name='virbr0' stp='on' delay='0'/>\n  <ip address='192.168.122.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='192.168.122.2' end='192.168.122.254'/>\n      <host mac='00:16:3e:77:e2:ed' name='a.example.com' ip='192.168.122.10'/>\n    </dhcp>\n  </ip>\n</network>\n");
        // The user's spelling: short forward, attributes in another order, one range end changed.
        let user = p("<network><name>nat</name><uuid>81ff0d90-c91e-6742-64da-4a736edb9a9b</uuid><forward mode='nat' dev='eth1'/><bridge name='virbr0'/><ip netmask='255.255.255.0' address='192.168.122.1'><dhcp><range end='192.168.122.253' start='192.168.122.2'/><host ip='192.168.122.10' mac='00:16:3e:77:e2:ed' name='a.example.com'/></dhcp></ip></network>");
        let after = align(&respell(&user), &stored).to_xml();
        let before = stored.to_xml();
        let changed: Vec<(&str, &str)> = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(before.lines().count(), after.lines().count(), "{after}");
        assert_eq!(
            changed,
            vec![(
                "      <range start='192.168.122.2' end='192.168.122.254'/>",
                "      <range start='192.168.122.2' end='192.168.122.253'/>"
            )]
        );
    }

    #[test]
    fn repeated_elements_pair_by_identity() {
        let stored = p("<network><name>n</name><ip address='10.0.0.1' prefix='24'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>");
        let user = p("<network><name>n</name><ip family='ipv6' address='fd00::1' prefix='64'/><ip address='10.0.0.1' prefix='16'/></network>");
        let after = align(&user, &stored).to_xml();
        assert_eq!(
            after,
            "<network>\n  <name>n</name>\n  <ip family='ipv6' address='fd00::1' prefix='64'/>\n  <ip address='10.0.0.1' prefix='16'/>\n</network>\n"
        );
    }
}
