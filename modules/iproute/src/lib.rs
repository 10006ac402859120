//! The kernel's links as the modules read them: `ip -j -d link show` and `ip -j -d addr
//! show` (iproute2 JSON; fields optional and unknown ones ignored, as iproute2 versions
//! differ), a device's type from sysfs (no process), macvlan/macvtap modes in every
//! spelling, the default routes (`ip -j route show table all default`, routes.rs), and the
//! checks and normalisation of names and MAC addresses.

mod mode;
pub mod routes;
mod sysfs;
pub use mode::MacvlanMode;
pub use routes::{preferred_v4, read_default_routes, DefaultRoute};
pub use sysfs::{device_type, openvswitch_fallback, DevType};

use kvmnet_protocol::{Ctx, Error, Result};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct AddrInfo {
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub local: String,
    #[serde(default)]
    pub prefixlen: u8,
    #[serde(default)]
    pub scope: String,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct LinkInfo {
    pub info_kind: Option<String>,
    pub info_data: Option<Value>,
    pub info_slave_kind: Option<String>,
    pub info_slave_data: Option<Value>,
}

/// One link (and its addresses when read with `addr show`).
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct Link {
    pub ifindex: u32,
    pub ifname: String,
    #[serde(default)]
    pub flags: Vec<String>,
    pub mtu: Option<u32>,
    pub operstate: Option<String>,
    /// Lower device's name (macvtap/macvlan/vlan parent), when in the same namespace.
    pub link: Option<String>,
    pub link_index: Option<u32>,
    pub master: Option<String>,
    pub address: Option<String>,
    pub link_type: Option<String>,
    pub linkinfo: Option<LinkInfo>,
    #[serde(default)]
    pub addr_info: Vec<AddrInfo>,
}

impl Link {
    /// `bridge`, `macvtap`, `veth`, ...; `None` for a plain NIC.
    pub fn kind(&self) -> Option<&str> {
        self.linkinfo.as_ref()?.info_kind.as_deref()
    }
    /// The kind of controller this link is a port of (`bridge`, `bond`).
    pub fn slave_kind(&self) -> Option<&str> {
        self.linkinfo.as_ref()?.info_slave_kind.as_deref()
    }
    /// A string field of `linkinfo.info_data` (e.g. `mode` of a macvtap).
    pub fn info_data_str(&self, key: &str) -> Option<&str> {
        self.linkinfo
            .as_ref()?
            .info_data
            .as_ref()?
            .get(key)?
            .as_str()
    }
    pub fn info_data(&self, key: &str) -> Option<&Value> {
        self.linkinfo.as_ref()?.info_data.as_ref()?.get(key)
    }
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
    /// The MAC address, normalised.
    pub fn mac(&self) -> Option<String> {
        self.address.as_deref().and_then(normalize_mac)
    }
    /// A macvlan or macvtap link (the macvlan family).
    pub fn is_macvlan_family(&self) -> bool {
        matches!(self.kind(), Some("macvtap") | Some("macvlan"))
    }
    /// The macvlan/macvtap mode.
    pub fn macvlan_mode(&self) -> Option<MacvlanMode> {
        self.info_data_str("mode").map(MacvlanMode::parse)
    }
    /// How a human calls what this link is.
    pub fn describe_kind(&self) -> String {
        match self.kind() {
            None => "network interface (no link kind: a NIC)".to_string(),
            Some("macvlan") => "macvlan (without a tap device)".to_string(),
            Some(k) => k.to_string(),
        }
    }
    /// Addresses that are not link-local (what a host could lose its connection over).
    pub fn global_addresses(&self) -> Vec<String> {
        self.addr_info
            .iter()
            .filter(|a| a.scope != "link" && a.scope != "host")
            .map(|a| format!("{}/{}", a.local, a.prefixlen))
            .collect()
    }
}

/// `ip -j -d link show`: every link with its kind, master and mode.
pub const LINKS_ARGV: &[&str] = &["ip", "-j", "-d", "link", "show"];
/// `ip -j -d addr show`: the same with every link's addresses.
pub const ADDRS_ARGV: &[&str] = &["ip", "-j", "-d", "addr", "show"];

/// Every link of the host, with their addresses when `addresses` (one `ip` process).
pub fn read_links(ctx: &mut Ctx, addresses: bool) -> Result<Vec<Link>> {
    let out = ctx.read(if addresses { ADDRS_ARGV } else { LINKS_ARGV })?;
    parse_links(&out.stdout)
}

/// The link called `name` among `links`.
pub fn find<'a>(links: &'a [Link], name: &str) -> Option<&'a Link> {
    links.iter().find(|l| l.ifname == name)
}

/// A random unicast, locally administered MAC address (as the kernel picks for a new
/// link) from six random bytes.
pub fn random_mac(bytes: &[u8]) -> String {
    let mut b = [0u8; 6];
    for (d, s) in b.iter_mut().zip(bytes) {
        *d = *s;
    }
    b[0] = (b[0] & 0xfe) | 0x02;
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse the JSON array `ip -j [-d] link|addr show` prints.
pub fn parse_links(json: &str) -> Result<Vec<Link>> {
    let text = json.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| Error::bug(format!("cannot read `ip -j` output: {e}")))
}

/// Normalise a MAC address for comparison: lower case, two hex digits per octet.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let parts: Vec<&str> = mac.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = Vec::with_capacity(6);
    for p in parts {
        if p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        out.push(format!("{:0>2}", p.to_ascii_lowercase()));
    }
    Some(out.join(":"))
}

/// A Linux interface name the kernel accepts: 1–15 bytes, no `/`, `:` or whitespace,
/// not `.` or `..`. The error names `option`.
pub fn check_ifname(option: &str, name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > 15 {
        Some(format!(
            "is {} bytes long; interface names have at most 15",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some("is not a valid interface name".to_string())
    } else {
        name.chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
            .map(|c| format!("contains {c:?}, which interface names cannot hold"))
    };
    match why {
        Some(w) => Err(Error::invalid(format!("option '{option}': '{name}' {w}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from `ip -j -d addr show` in a lab (iproute2 6.1), trimmed.
    const SAMPLE: &str = r#"[{"ifindex":2,"ifname":"ens32","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"operstate":"UP","link_type":"ether","address":"aa:bb:cc:00:00:01","master":"br0","linkinfo":{"info_kind":"veth","info_slave_kind":"bridge","info_slave_data":{"state":"forwarding"}},"addr_info":[{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]},
    {"ifindex":5,"link":"ens33","ifname":"macvtap0","flags":["BROADCAST","MULTICAST","UP"],"mtu":1500,"address":"52:54:00:12:34:56","linkinfo":{"info_kind":"macvtap","info_data":{"mode":"private"}},"addr_info":[{"family":"inet","local":"192.0.2.10","prefixlen":24,"scope":"global"}]}]"#;

    #[test]
    fn reads_links_kinds_and_addresses() {
        let l = parse_links(SAMPLE).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].master.as_deref(), Some("br0"));
        assert_eq!(l[0].slave_kind(), Some("bridge"));
        assert!(l[0].global_addresses().is_empty());
        assert_eq!(l[1].kind(), Some("macvtap"));
        assert_eq!(l[1].info_data_str("mode"), Some("private"));
        assert_eq!(l[1].link.as_deref(), Some("ens33"));
        assert_eq!(l[1].global_addresses(), vec!["192.0.2.10/24"]);
        assert!(parse_links("").unwrap().is_empty());
    }

    #[test]
    fn iproute2_5_9_and_6_15_are_read_alike() {
        // `ip -j -d addr show` in a lab host: Debian 11 (iproute2 5.9.0) and Debian 13
        // (6.15.0), each with br0 (STP off, 192.0.2.10/24) made by NetworkManager, ens32 its
        // port, ens33 with a link-local address only, libvirt's virbr0.
        for text in [
            include_str!("../tests/data/addr-5.9.json"),
            include_str!("../tests/data/addr-6.15.json"),
        ] {
            let l = parse_links(text).unwrap();
            let names: Vec<&str> = l.iter().map(|x| x.ifname.as_str()).collect();
            assert_eq!(names, ["lo", "ens32", "ens33", "virbr0", "br0"]);
            let br = find(&l, "br0").unwrap();
            assert_eq!(br.kind(), Some("bridge"));
            assert_eq!(br.info_data("stp_state").and_then(Value::as_i64), Some(0));
            assert_eq!(br.global_addresses(), ["192.0.2.10/24"]);
            let port = find(&l, "ens32").unwrap();
            assert_eq!(port.master.as_deref(), Some("br0"));
            assert_eq!(
                (port.kind(), port.slave_kind()),
                (Some("veth"), Some("bridge"))
            );
            assert!(port.mac().is_some() && port.is_up());
            assert!(find(&l, "ens33").unwrap().global_addresses().is_empty());
            assert!(find(&l, "lo").unwrap().global_addresses().is_empty());
        }
    }

    #[test]
    fn random_macs_are_unicast_and_locally_administered() {
        assert_eq!(random_mac(&[0, 1, 2, 3, 4, 5]), "02:01:02:03:04:05");
        assert_eq!(random_mac(&[0xff; 6]), "fe:ff:ff:ff:ff:ff");
    }

    #[test]
    fn macs_and_names() {
        assert_eq!(
            normalize_mac("52:54:0:AB:cd:1").as_deref(),
            Some("52:54:00:ab:cd:01")
        );
        assert_eq!(
            normalize_mac("52-54-00-ab-cd-01").as_deref(),
            Some("52:54:00:ab:cd:01")
        );
        assert!(normalize_mac("52:54:00:ab:cd").is_none());
        assert!(normalize_mac("52:54:00:ab:cd:zz").is_none());
        assert!(check_ifname("name", "br0").is_ok());
        assert!(check_ifname("name", "a-very-long-name0")
            .unwrap_err()
            .msg
            .contains("at most 15"));
        assert!(check_ifname("ports", "a/b")
            .unwrap_err()
            .msg
            .starts_with("option 'ports'"));
        assert!(check_ifname("name", "a b").is_err());
        assert!(check_ifname("name", "a:b").is_err());
        assert!(check_ifname("name", "").is_err());
    }
}
