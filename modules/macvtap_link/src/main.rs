//! kvmnet.network.macvtap_link — a macvtap link on a parent NIC, at runtime (`ip link`)
//! or persistent across reboots (a NetworkManager macvlan profile with `tap yes`).
//!
//! query: one `ip -j -d link show` (every link: the parent and its other macvlan/macvtap
//! links matter too) and, when NetworkManager is involved, one list call whose FILENAME
//! column leads to the macvlan profiles' keyfiles (read directly; `con show` only for a
//! profile stored another way). plan: the `ip`/`nmcli` commands that make the
//! difference. verify: re-read and compare what was asked.

mod model;
mod plan;

use kvmnet_iproute::{check_ifname, normalize_mac};
use kvmnet_protocol::output::capitalise;
use kvmnet_protocol::{Ctx, Error, Module, Opt, Plan, Result, Spec};
use model::{find, read_links, read_profiles, read_profiles_if_nm, Mode};
use plan::{link_actions, mismatches, result_json, Desired, State};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    /// The parent NIC.
    pub link: Option<String>,
    /// bridge | private | vepa | passthrough (`passthru` normalised by the spec).
    pub mode: Option<String>,
    pub mac: Option<String>,
    /// true: a NetworkManager profile; false: none (ours removed); omitted: ip link only.
    pub persistent: Option<bool>,
    pub conn_name: Option<String>,
    pub up: bool,
    pub state: String,
}

struct MacvtapLink;

impl Module for MacvtapLink {
    const NAME: &'static str = "macvtap_link";
    type Params = Params;
    type State = State;

    fn spec() -> Spec {
        Spec::new()
            .opt(Opt::str("name").required())
            .opt(Opt::str("link").alias("parent"))
            .opt(
                Opt::str("mode")
                    .choices(&["bridge", "private", "vepa", "passthrough"])
                    .choice_alias("passthru", "passthrough"),
            )
            .opt(Opt::str("mac").alias("mac_address"))
            .opt(Opt::bool("persistent"))
            .opt(Opt::str("conn_name"))
            .opt(Opt::bool("up").default(true))
            .opt(
                Opt::str("state")
                    .choices(&["present", "absent"])
                    .default("present"),
            )
            .required_if("state", "present", &["link", "mode"])
    }

    fn validate(p: &Params) -> Result<()> {
        check_ifname("name", &p.name)?;
        if p.state == "absent" {
            // Only the identity matters; the other options may stay in the task.
            return Ok(());
        }
        if let Some(l) = &p.link {
            check_ifname("link", l)?;
            if *l == p.name {
                return Err(Error::invalid(format!(
                    "option 'link': a macvtap cannot be its own parent ('{l}')"
                )));
            }
        }
        if let Some(m) = &p.mac {
            let n = normalize_mac(m).ok_or_else(|| {
                Error::invalid(format!(
                    "option 'mac': '{m}' is not a MAC address (six hex octets, e.g. 52:54:00:12:34:56)"
                ))
            })?;
            let first = u8::from_str_radix(&n[0..2], 16).unwrap_or(0);
            if first & 1 == 1 || n == "00:00:00:00:00:00" {
                return Err(Error::invalid(format!(
                    "option 'mac': '{m}' is a multicast or null address; a link needs a unicast one"
                )));
            }
            if p.mode.as_deref() == Some("passthrough") {
                return Err(Error::invalid(
                    "option 'mac' does not fit mode passthrough: the link takes its parent's address \
                     (setting one would change the parent NIC's address)",
                ));
            }
        }
        if p.persistent == Some(true) && !p.up {
            return Err(Error::invalid(
                "option 'up': up: false does not fit persistent: true (NetworkManager brings the \
                 link up whenever it activates the profile); use persistent: false for a link kept down",
            ));
        }
        if let Some(c) = &p.conn_name {
            if p.persistent != Some(true) {
                return Err(Error::invalid(
                    "option 'conn_name' only applies with persistent: true (it names the NetworkManager profile)",
                ));
            }
            if c.trim().is_empty() {
                return Err(Error::invalid("option 'conn_name' is empty"));
            }
        }
        Ok(())
    }

    fn query(ctx: &mut Ctx, p: &Params) -> Result<State> {
        read_state(ctx, p)
    }

    fn plan(_ctx: &mut Ctx, p: &Params, st: &State) -> Result<Plan> {
        plan::plan(p, st)
    }

    fn apply(ctx: &mut Ctx, p: &Params, _st: &State, plan: &Plan) -> Result<()> {
        for a in &plan.actions {
            if a.argv.is_empty() {
                continue;
            }
            let is_link_del = a.argv.len() >= 3 && a.argv[..3] == ["ip", "link", "del"];
            let is_con_delete = a.argv.len() >= 3 && a.argv[..3] == ["nmcli", "con", "delete"];
            // Profiles already gone (nmcli rc 10) are as deleted as they get.
            let gone = |out: &kvmnet_protocol::Output| is_con_delete && out.rc == 10;
            match ctx.write_accepting(&a.argv, a.stdin.as_deref(), gone) {
                Ok(_) => {}
                // NetworkManager removes a link it made together with its profile.
                Err(e)
                    if is_link_del
                        && e.extra
                            .get("stderr")
                            .and_then(Value::as_str)
                            .is_some_and(|s| {
                                s.contains("Cannot find device") || s.contains("does not exist")
                            }) => {}
                Err(e) => return Err(e),
            }
            if is_con_delete && p.state == "present" && p.persistent == Some(false) {
                // The runtime link may go with the profile (NetworkManager deletes links it
                // made, a moment after nmcli returns): once it has settled, plan the ip
                // commands again from what is there now.
                let links = settled_links(ctx, &p.name)?;
                let want = plan.result.get("link").cloned().unwrap_or(Value::Null);
                let d = desired_from(&want, p);
                for la in link_actions(&p.name, find(&links, &p.name), &d, false) {
                    ctx.write(&la.argv, None)?;
                }
                return Ok(());
            }
        }
        Ok(())
    }

    fn verify(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
        let want = plan.result.get("link").cloned().unwrap_or(Value::Null);
        // NetworkManager finishes some work (removing a link with its profile) just
        // after nmcli returns: allow it a moment.
        let mut last = Vec::new();
        for attempt in 0..20 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(150));
            }
            let st = read_state(ctx, p)?;
            last = mismatches(p, &st, &want);
            if last.is_empty() {
                plan.set("link", result_json(p, &st));
                let planned: Vec<&Vec<String>> = plan.actions.iter().map(|a| &a.argv).collect();
                if ctx.commands.iter().any(|c| !planned.contains(&c)) {
                    let base = plan
                        .msg
                        .clone()
                        .unwrap_or_else(|| capitalise(&plan.summaries()));
                    plan.msg = Some(format!(
                        "{base}; NetworkManager removed {} with its profile: made it again as a runtime link with the same settings and address",
                        p.name
                    ));
                }
                return Ok(());
            }
        }
        Err(Error::verification(format!(
            "after the change, {}",
            last.join("; ")
        )))
    }
}

/// The state the task needs: all links, and NetworkManager's profiles for this name when
/// `persistent` is given (required) or the link is to be removed (when NM is there).
fn read_state(ctx: &mut Ctx, p: &Params) -> Result<State> {
    let links = read_links(ctx)?;
    let profiles = match (p.persistent.is_some(), p.state.as_str()) {
        (true, _) => Some(read_profiles(ctx, &p.name)?),
        (false, "absent") => read_profiles_if_nm(ctx, &p.name)?,
        _ => None,
    };
    Ok(State { links, profiles })
}

/// Read the links until `name` is gone or unchanged for a while (at most ~3 s).
fn settled_links(ctx: &mut Ctx, name: &str) -> Result<Vec<model::LinkView>> {
    let start = std::time::Instant::now();
    let mut prev = read_links(ctx)?;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = read_links(ctx)?;
        let gone = find(&now, name).is_none();
        let stable = find(&now, name) == find(&prev, name)
            && start.elapsed() >= std::time::Duration::from_millis(500);
        if gone || stable || start.elapsed() >= std::time::Duration::from_secs(3) {
            return Ok(now);
        }
        prev = now;
    }
}

fn desired_from(want: &Value, p: &Params) -> Desired {
    let f = |k: &str| want.get(k).and_then(Value::as_str).map(str::to_string);
    Desired {
        parent: f("parent").unwrap_or_default(),
        mode: Mode::parse(&f("mode").unwrap_or_default()),
        mac: f("mac"),
        up: p.up,
    }
}

fn main() {
    kvmnet_protocol::run::<MacvtapLink>()
}

#[cfg(test)]
mod tests;
