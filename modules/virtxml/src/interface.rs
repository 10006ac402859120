//! What kvmnet knows of a domain's <interface> elements (owned by domain_iface).
//!
//! An interface is identified by its MAC. kvmnet manages four facets of it (type, source,
//! macvtap mode, model) and keeps every other child and attribute as it is, dropping only
//! what belongs to the old source when the source changes.

use crate::tree::Element;

/// The interface types kvmnet points interfaces at.
pub const TYPES: &[&str] = &["network", "bridge", "direct"];

/// What libvirt stores for a `direct` interface without a mode.
pub const DIRECT_DEFAULT_MODE: &str = "vepa";

/// The facets kvmnet compares and reports, normalised (MAC lower case, the direct mode
/// libvirt assumes when none is written).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facets {
    pub mac: String,
    /// `type` attribute: network, bridge, direct, or any other libvirt type.
    pub kind: String,
    /// Network name, bridge name or host device, as the type says.
    pub source: Option<String>,
    /// Macvtap mode (direct only).
    pub mode: Option<String>,
    pub model: Option<String>,
}

/// The `<source>` attribute that names the source for an interface type.
pub fn source_attr(kind: &str) -> Option<&'static str> {
    match kind {
        "network" => Some("network"),
        "bridge" => Some("bridge"),
        "direct" => Some("dev"),
        _ => None,
    }
}

/// Lower-case MAC of an `<interface>` element, if it has one.
pub fn mac_of(iface: &Element) -> Option<String> {
    iface
        .path("mac")
        .and_then(|m| m.attr("address"))
        .map(str::to_ascii_lowercase)
}

/// The facets of one `<interface>` element.
///
/// A running guest's live XML shows an interface on a network by the type it resolved
/// to (`<interface type='direct'><source network='mvt' dev='ens32' mode='bridge'/>`,
/// measured on libvirt 9.0); `source/@network` still names the network, so such an
/// interface reads as type network, as the persistent definition says.
pub fn facets(iface: &Element) -> Facets {
    let src = iface.child("source");
    let kind = match src.and_then(|s| s.attr("network")) {
        Some(_) => "network".to_string(),
        None => iface.attr("type").unwrap_or("").to_string(),
    };
    let source = source_attr(&kind)
        .and_then(|a| src.and_then(|s| s.attr(a)))
        .map(str::to_string);
    let mode = if kind == "direct" {
        Some(
            src.and_then(|s| s.attr("mode"))
                .unwrap_or(DIRECT_DEFAULT_MODE)
                .to_string(),
        )
    } else {
        None
    };
    Facets {
        mac: mac_of(iface).unwrap_or_default(),
        kind,
        source,
        mode,
        model: iface
            .path("model")
            .and_then(|m| m.attr("type"))
            .map(str::to_string),
    }
}

/// Every `<interface>` of a domain definition, in document order.
pub fn interfaces(domain: &Element) -> Vec<&Element> {
    domain
        .child("devices")
        .map(|d| d.children_named("interface").collect())
        .unwrap_or_default()
}

/// The interface with this (normalised, lower-case) MAC.
pub fn find<'a>(domain: &'a Element, mac: &str) -> Option<&'a Element> {
    interfaces(domain)
        .into_iter()
        .find(|i| mac_of(i).as_deref() == Some(mac))
}

/// A running domain's live XML carries `id` on `<domain>`.
pub fn is_running(live_domain: &Element) -> bool {
    live_domain.attr("id").is_some_and(|id| id != "-1")
}

/// What kvmnet asks of an interface; `None` leaves a facet as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub kind: Option<String>,
    pub source: Option<String>,
    pub mode: Option<String>,
    pub model: Option<String>,
}

impl Wanted {
    /// The facets an interface that now has `cur` will have after this edit.
    pub fn merged(&self, cur: &Facets) -> Facets {
        let kind = self.kind.clone().unwrap_or_else(|| cur.kind.clone());
        let same_kind = kind == cur.kind;
        let source = self
            .source
            .clone()
            .or_else(|| same_kind.then(|| cur.source.clone()).flatten());
        let mode = if kind == "direct" {
            self.mode
                .clone()
                .or_else(|| same_kind.then(|| cur.mode.clone()).flatten())
                .or_else(|| Some(DIRECT_DEFAULT_MODE.to_string()))
        } else {
            None
        };
        Facets {
            mac: cur.mac.clone(),
            kind,
            source,
            mode,
            model: self.model.clone().or_else(|| cur.model.clone()),
        }
    }
}

/// `iface` edited to have `want` (the result of [`Wanted::merged`]). Everything the edit
/// does not concern stays in place and in order. When the type or the source changes,
/// the old `<source>` (with runtime attributes such as `portid` and anything specific to
/// the old source, e.g. `portgroup`) and `<virtualport>` (the old switch's port profile)
/// go; a change of type also drops the attributes that only the old type knows.
pub fn edit(iface: &Element, want: &Facets) -> Element {
    let cur = facets(iface);
    let mut el = iface.clone();
    let source_changed = want.kind != cur.kind || want.source != cur.source;
    if source_changed && el.attr("type") != Some(want.kind.as_str()) {
        el.set_attr("type", &want.kind);
        // `managed` belongs to hostdev interfaces.
        el.remove_attr("managed");
    }
    if source_changed {
        let mut src = Element::new("source");
        if let (Some(attr), Some(name)) = (source_attr(&want.kind), &want.source) {
            src.set_attr(attr, name);
        }
        if let Some(mode) = &want.mode {
            src.set_attr("mode", mode);
        }
        replace_or_insert(&mut el, src, &["mac"]);
        el.remove_children("virtualport");
    } else if want.mode != cur.mode {
        if let (Some(mode), Some(src)) = (&want.mode, el.child_mut("source")) {
            src.set_attr("mode", mode);
        }
    }
    if want.model != cur.model {
        if let Some(model) = &want.model {
            match el.child_mut("model") {
                Some(m) => {
                    // Attributes of the old model (none are usual) stay; its type changes.
                    m.set_attr("type", model);
                }
                None => {
                    let m = Element::new("model").with_attr("type", model);
                    replace_or_insert(&mut el, m, &["mac", "source", "virtualport", "target"]);
                }
            }
        }
    }
    el
}

/// Replace the first child named like `child`, or insert it after the last of `after`
/// present (at the front when none is).
fn replace_or_insert(el: &mut Element, child: Element, after: &[&str]) {
    if let Some(i) = el.children.iter().position(|c| c.name == child.name) {
        el.children[i] = child;
        return;
    }
    let pos = el
        .children
        .iter()
        .rposition(|c| after.contains(&c.name.as_str()))
        .map(|i| i + 1)
        .unwrap_or(0);
    el.children.insert(pos, child);
}

/// A new `<interface>` element as kvmnet adds it.
pub fn new_interface(want: &Facets) -> Element {
    let mut el = Element::new("interface").with_attr("type", &want.kind);
    el.children
        .push(Element::new("mac").with_attr("address", &want.mac));
    let mut src = Element::new("source");
    if let (Some(attr), Some(name)) = (source_attr(&want.kind), &want.source) {
        src.set_attr(attr, name);
    }
    if let Some(mode) = &want.mode {
        src.set_attr("mode", mode);
    }
    el.children.push(src);
    if let Some(model) = &want.model {
        el.children
            .push(Element::new("model").with_attr("type", model));
    }
    el
}

/// What carries an interface's packets on the host: libvirt can move a running guest's
/// interface between two tap-on-bridge backings, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A tap device on a Linux (or Open vSwitch) bridge.
    Bridge,
    /// A macvtap device on a host NIC.
    Macvtap,
    /// Anything else (hostdev, user, ethernet, vhostuser, ...).
    Other,
}

/// The backing of interfaces attached to this libvirt network (its `net-dumpxml`).
pub fn network_backing(net: &Element) -> Backing {
    let mode = net
        .child("forward")
        .map(|f| f.attr("mode").unwrap_or("nat"));
    let has_bridge = net.child("bridge").and_then(|b| b.attr("name")).is_some();
    match mode {
        None | Some("nat") | Some("route") | Some("open") => Backing::Bridge,
        Some("bridge") if has_bridge => Backing::Bridge,
        Some("bridge" | "private" | "vepa" | "passthrough") => Backing::Macvtap,
        _ => Backing::Other,
    }
}

/// The backing of a running guest's interface, read from its live XML, where libvirt
/// records what a network interface resolved to (`<source network=... bridge=...>` or
/// `dev=... mode=...`).
pub fn live_backing(iface: &Element) -> Backing {
    let src = iface.child("source");
    match iface.attr("type").unwrap_or("") {
        "bridge" => Backing::Bridge,
        "direct" => Backing::Macvtap,
        "network" => match src {
            Some(s) if s.attr("bridge").is_some() => Backing::Bridge,
            Some(s) if s.attr("dev").is_some() => Backing::Macvtap,
            _ => Backing::Other,
        },
        _ => Backing::Other,
    }
}

/// The live target device (`vnet0`, `macvtap0`) of a running guest's interface.
pub fn target_dev(iface: &Element) -> Option<String> {
    iface
        .path("target")
        .and_then(|t| t.attr("dev"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A hand-written persistent interface with everything kvmnet must keep.
    const RICH: &str = "<interface type='network'>
  <mac address='52:54:00:6B:3C:58'/>
  <source network='default' portgroup='pg1'/>
  <virtualport type='openvswitch'/>
  <target dev='guest0'/>
  <model type='virtio'/>
  <driver name='vhost' queues='2'/>
  <boot order='2'/>
  <rom enabled='no'/>
  <mtu size='9000'/>
  <link state='down'/>
  <filterref filter='clean-traffic'/>
  <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
</interface>";

    // libvirt 9.0 live XML of an interface on a macvtap network (forward mode bridge).
    const LIVE_MVT: &str = "<interface type='direct'>
  <mac address='52:54:00:aa:00:01'/>
  <source network='mvt' portid='f637355c-67e6-4dea-871d-ef1b6f662edf' dev='ens32' mode='bridge'/>
  <target dev='macvtap1'/>
  <model type='virtio'/>
  <alias name='net0'/>
</interface>";

    fn names(el: &Element) -> Vec<&str> {
        el.children.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn facets_normalise_mac_and_read_live_network_interfaces_as_network() {
        let f = facets(&Element::parse(RICH).unwrap());
        assert_eq!(f.mac, "52:54:00:6b:3c:58");
        assert_eq!(
            (f.kind.as_str(), f.source.as_deref()),
            ("network", Some("default"))
        );
        assert_eq!(f.mode, None);
        let live = Element::parse(LIVE_MVT).unwrap();
        let f = facets(&live);
        assert_eq!(
            (f.kind.as_str(), f.source.as_deref(), f.mode.as_deref()),
            ("network", Some("mvt"), None)
        );
        assert_eq!(live_backing(&live), Backing::Macvtap);
        let direct =
            Element::parse("<interface type='direct'><source dev='ens32'/></interface>").unwrap();
        assert_eq!(
            facets(&direct).mode.as_deref(),
            Some("vepa"),
            "libvirt's default"
        );
    }

    #[test]
    fn edit_to_direct_keeps_everything_but_the_old_source() {
        let el = Element::parse(RICH).unwrap();
        let want = Wanted {
            kind: Some("direct".into()),
            source: Some("ens32".into()),
            mode: Some("bridge".into()),
            model: None,
        }
        .merged(&facets(&el));
        let out = edit(&el, &want);
        assert_eq!(out.attr("type"), Some("direct"));
        assert_eq!(
            out.child("source").unwrap().attrs,
            vec![
                ("dev".to_string(), "ens32".to_string()),
                ("mode".to_string(), "bridge".to_string())
            ]
        );
        assert_eq!(
            names(&out),
            [
                "mac",
                "source",
                "target",
                "model",
                "driver",
                "boot",
                "rom",
                "mtu",
                "link",
                "filterref",
                "address"
            ]
        );
        for keep in [
            "mac",
            "target",
            "model",
            "driver",
            "boot",
            "rom",
            "mtu",
            "link",
            "filterref",
            "address",
        ] {
            assert_eq!(out.child(keep), el.child(keep), "{keep}");
        }
        assert_eq!(facets(&out), want);
    }

    #[test]
    fn edit_of_mode_or_model_only_touches_that() {
        let el = Element::parse("<interface type='direct'><mac address='52:54:00:00:00:01'/><source dev='ens32' mode='vepa'/><virtualport type='802.1Qbg'/></interface>").unwrap();
        let want = Wanted {
            mode: Some("private".into()),
            model: Some("e1000e".into()),
            ..Default::default()
        }
        .merged(&facets(&el));
        let out = edit(&el, &want);
        assert_eq!(out.child("source").unwrap().attr("mode"), Some("private"));
        assert!(
            out.child("virtualport").is_some(),
            "same source: its port profile stays"
        );
        assert_eq!(names(&out), ["mac", "source", "virtualport", "model"]);
        assert_eq!(facets(&out), want);
        // Nothing asked: the element is unchanged.
        assert_eq!(edit(&el, &facets(&el)), el);
    }

    #[test]
    fn network_backing_follows_the_forward_mode() {
        let b = |x: &str| network_backing(&Element::parse(x).unwrap());
        assert_eq!(
            b("<network><name>d</name><forward mode='nat'/><bridge name='virbr0'/></network>"),
            Backing::Bridge
        );
        assert_eq!(
            b("<network><name>i</name><bridge name='virbr1'/></network>"),
            Backing::Bridge
        );
        assert_eq!(
            b("<network><name>h</name><forward mode='bridge'/><bridge name='br0'/></network>"),
            Backing::Bridge
        );
        assert_eq!(b("<network><name>m</name><forward mode='bridge'><interface dev='ens32'/></forward></network>"), Backing::Macvtap);
        assert_eq!(b("<network><name>p</name><forward dev='ens32' mode='private'><interface dev='ens32'/></forward></network>"), Backing::Macvtap);
        assert_eq!(
            b("<network><name>x</name><forward mode='hostdev'/></network>"),
            Backing::Other
        );
    }

    #[test]
    fn new_interface_has_only_what_was_asked() {
        let f = Facets {
            mac: "52:54:00:00:00:09".into(),
            kind: "direct".into(),
            source: Some("ens32".into()),
            mode: Some("vepa".into()),
            model: Some("virtio".into()),
        };
        assert_eq!(
            new_interface(&f).to_xml(),
            "<interface type='direct'>\n  <mac address='52:54:00:00:00:09'/>\n  <source dev='ens32' mode='vepa'/>\n  <model type='virtio'/>\n</interface>\n"
        );
    }
}
