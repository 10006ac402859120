//! The host's default routes, both families in one `ip -j route show table all default`
//! (iproute2 5.9, 6.1 and 6.15 print the same keys: see the captures in the tests).
//! nm_bridge reads them only in a run that changes something that could cut the host off,
//! and in its verification.

use kvmnet_protocol::{Ctx, Error, Result};
use serde::Deserialize;

pub const DEFAULT_ROUTES_ARGV: &[&str] = &["ip", "-j", "route", "show", "table", "all", "default"];

/// One default route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DefaultRoute {
    pub dev: String,
    pub gateway: Option<String>,
    /// Absent for the main table.
    pub table: Option<String>,
    pub metric: Option<u32>,
    /// Router preference: IPv6 routes only.
    pub pref: Option<String>,
}

impl DefaultRoute {
    /// An IPv6 route (the JSON names no family: a route's gateway or its router
    /// preference tells).
    pub fn v6(&self) -> bool {
        self.pref.is_some() || self.gateway.as_deref().is_some_and(|g| g.contains(':'))
    }
}

/// Parse what `ip -j route show table all default` prints: the main table's default
/// routes (other tables belong to policy routing this module does not manage).
pub fn parse_default_routes(json: &str) -> Result<Vec<DefaultRoute>> {
    let text = json.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<DefaultRoute> = serde_json::from_str(text)
        .map_err(|e| Error::bug(format!("cannot read `ip -j route` output: {e}")))?;
    Ok(all
        .into_iter()
        .filter(|r| r.table.as_deref().is_none_or(|t| t == "main"))
        .collect())
}

/// The main table's default routes, one `ip` process.
pub fn read_default_routes(ctx: &mut Ctx) -> Result<Vec<DefaultRoute>> {
    parse_default_routes(&ctx.read(DEFAULT_ROUTES_ARGV)?.stdout)
}

/// The preferred IPv4 default route (lowest metric).
pub fn preferred_v4(routes: &[DefaultRoute]) -> Option<&DefaultRoute> {
    routes
        .iter()
        .filter(|r| !r.v6())
        .min_by_key(|r| r.metric.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_and_only_the_main_table() {
        // NM 1.42 / iproute2 6.1 in a lab: a DHCP default route on ens32, a hand-made IPv6
        // one, and one in a policy table.
        let r = parse_default_routes(r#"[{"dst":"default","gateway":"198.51.100.1","dev":"ens32","protocol":"dhcp","prefsrc":"198.51.100.182","metric":100,"flags":[]},{"dst":"default","gateway":"fe80::1","dev":"ens32","metric":2000,"flags":[],"pref":"medium"},{"dst":"default","table":"100","gateway":"192.0.2.1","dev":"ens33","flags":[]}]"#).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            preferred_v4(&r).unwrap().gateway.as_deref(),
            Some("198.51.100.1")
        );
        assert!(r[1].v6());
        assert!(parse_default_routes("[]\n").unwrap().is_empty());
        // iproute2 5.9.0 (Debian 11) and 6.15.0 (Debian 13): NetworkManager's static default
        // route of br0, the same keys.
        for text in [
            include_str!("../tests/data/routes-5.9.json"),
            include_str!("../tests/data/routes-6.15.json"),
        ] {
            let r = parse_default_routes(text).unwrap();
            assert_eq!(r.len(), 1, "{text}");
            let v4 = preferred_v4(&r).unwrap();
            assert_eq!(
                (v4.dev.as_str(), v4.gateway.as_deref()),
                ("br0", Some("192.0.2.1"))
            );
            assert_eq!(v4.metric, Some(425));
            assert!(!v4.v6());
        }
        assert!(parse_default_routes("").unwrap().is_empty());
    }
}
