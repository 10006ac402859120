//! The steps a plan is made of, and how they run. Profiles this run creates get their
//! UUID from NetworkManager (`nmcli con add` without `connection.uuid`: NM before 1.42
//! refuses that property on add); later steps name them by that UUID, which the planned
//! commands show as a placeholder (`<uuid of bridge-br0>`).

use crate::checkpoint;
use crate::memory::{self, DIR};
use crate::plan::{set_values, Desired, Plan};
use kvmnet_nmcli::conn::{self, added_uuid};
use kvmnet_nmdbus::device;
use kvmnet_protocol::{BusCall, Command, Ctx, Error, Output, Result, Step};

/// How planned D-Bus calls show a device's object path before NetworkManager names it.
pub fn device_placeholder(name: &str) -> String {
    format!("<D-Bus path of {name}>")
}

/// A profile a step acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// One that exists, by its UUID.
    Uuid(String),
    /// The bridge profile this run creates (its name).
    NewBridge(String),
    /// The port profile this run creates for interface `port`.
    NewPort { port: String, conn_name: String },
    /// The plain profile `state: absent` makes for interface `port` (its old one was
    /// deleted): it carries what the bridge had inherited.
    NewProfile { port: String, conn_name: String },
}

impl Ref {
    /// How a planned command shows the UUID: itself, or a placeholder for one NetworkManager
    /// has not assigned yet.
    pub fn shown(&self) -> String {
        match self {
            Ref::Uuid(u) => u.clone(),
            Ref::NewBridge(n)
            | Ref::NewPort { conn_name: n, .. }
            | Ref::NewProfile { conn_name: n, .. } => format!("<uuid of {n}>"),
        }
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `nmcli con add type bridge` with the asked settings.
    CreateBridge {
        name: String,
        conn_name: String,
        settings: Vec<(String, String)>,
    },
    /// `nmcli con mod` of the bridge profile.
    ModifyBridge {
        uuid: String,
        conn_name: String,
        changes: Vec<(String, String)>,
    },
    /// Another profile that would hold `port`: autoconnect off.
    DisableProfile {
        uuid: String,
        id: String,
        port: String,
    },
    /// Another profile that would hold a port: deactivated.
    DeactivateProfile { uuid: String, id: String },
    /// Another profile that would hold `port`: deleted (`port_profiles: delete`).
    DeleteProfile {
        uuid: String,
        id: String,
        port: String,
    },
    /// A new port profile for interface `port`, its controller the bridge.
    CreatePort {
        port: String,
        bridge_name: String,
        conn_name: String,
        master: Ref,
        autoconnect: Option<bool>,
    },
    /// `nmcli con mod` of a port profile: autoconnect, or a controller that cannot work
    /// (`was`: a profile name, another duplicate bridge profile) repointed to the bridge.
    ModifyPort {
        uuid: String,
        id: String,
        changes: Vec<(String, String)>,
        repair: Option<Repair>,
    },
    /// A port profile whose interface is no longer in `ports`.
    DeletePort {
        uuid: String,
        id: String,
        port: Option<String>,
    },
    /// A profile switched off earlier gets its autoconnect back.
    EnableProfile { uuid: String, id: String },
    /// A profile switched off earlier is activated again; failing to is a warning (the
    /// removal that was asked for is done).
    RestoreProfile {
        uuid: String,
        id: String,
        port: String,
    },
    /// `mkdir` of the memory directory.
    MakeMemoryDir,
    /// Write the memory file.
    Remember { bridge: String, body: String },
    /// Remove the memory file.
    Forget { bridge: String },
    /// Activate the bridge profile (`new_mac`: again, so that the kernel takes its MAC).
    ActivateBridge {
        bridge: Ref,
        conn_name: String,
        name: String,
        new_mac: bool,
    },
    /// Apply changed settings to the active bridge (NetworkManager's `Device.Reapply` on
    /// the device `GetDeviceByIpIface` names: the interface is data, never a command-line
    /// word); where NetworkManager refuses such a change to a running device, the bridge is
    /// re-activated, then these ports.
    Reapply {
        name: String,
        bridge: String,
        ports: Vec<Ref>,
    },
    /// Activate a port profile.
    ActivatePort {
        port: Ref,
        ifname: String,
        bridge_name: String,
    },
    /// `state: absent`: the bridge's profiles and its ports' in one call; profiles already
    /// gone (rc 10) count as deleted.
    DeleteAll {
        uuids: Vec<String>,
        ids: Vec<String>,
    },
    /// `state: absent`: a plain profile for `port`, carrying what the bridge had inherited
    /// from the port's old profile (deleted by `port_profiles: delete`).
    GiveBack {
        port: String,
        conn_name: String,
        settings: Vec<(String, String)>,
    },
    /// Activate the profile `GiveBack` made.
    ActivateGivenBack { profile: Ref, port: String },
    /// Take a NetworkManager checkpoint of these interfaces (guard.rs): until verify
    /// commits, NetworkManager rolls the later steps back by itself after `timeout` s.
    Checkpoint { devices: Vec<String>, timeout: u32 },
    /// `mkdir` of the directory of the pending-checkpoint marker.
    MakeRunDir,
    /// Write the marker that tells a later run a checkpoint may be pending (and, if this
    /// run rewrites the memory file, what it held before; the guests' taps in the bridge).
    MarkCheckpoint {
        bridge: String,
        memory_before: Option<Option<String>>,
        taps: Vec<String>,
    },
    /// An earlier run was interrupted inside its checkpoint and NetworkManager rolled it
    /// back: put its memory file back as it was before it (`None`: remove it).
    PutBackMemory {
        bridge: String,
        text: Option<String>,
    },
    /// A guest's tap that was in the bridge, back into it (NetworkManager before 1.38
    /// detaches ports it did not make when it rolls a bridge back by itself).
    Reattach { tap: String, bridge: String },
    /// Commit: destroy the checkpoint, keeping the changes (verify runs it once the host
    /// is verified reachable).
    Commit,
    /// Remove the marker.
    Unmark { bridge: String },
    /// Remove the marker an interrupted run left, whose checkpoint NetworkManager no longer
    /// holds (it rolled back, or lost it in a restart).
    ClearMarker { bridge: String },
}

/// A port profile's controller being repointed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub was: String,
    pub bridge_uuid: String,
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

fn with_pairs(mut v: Vec<String>, pairs: &[(String, String)]) -> Vec<String> {
    for (k, val) in pairs {
        v.push(k.clone());
        v.push(val.clone());
    }
    v
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn autoconnect_argv(uuid: &str, on: bool) -> Vec<String> {
    let mut v = argv(&["nmcli", "con", "mod", "uuid", uuid]);
    v.extend(argv(&["connection.autoconnect", yes_no(on)]));
    v
}

impl Action {
    /// The command, with each profile named by what `uuid` says (the UUID, or the
    /// placeholder while planning).
    pub fn command_with(&self, fill: &dyn Fn(&Ref) -> String) -> Command {
        let up = |r: &Ref| argv(&["nmcli", "con", "up", "uuid", &fill(r)]);
        let words = match self {
            Action::CreateBridge {
                name,
                conn_name,
                settings,
            } => with_pairs(
                argv(&[
                    "nmcli", "con", "add", "type", "bridge", "ifname", name, "con-name", conn_name,
                ]),
                settings,
            ),
            Action::ModifyBridge { uuid, changes, .. }
            | Action::ModifyPort { uuid, changes, .. } => {
                with_pairs(argv(&["nmcli", "con", "mod", "uuid", uuid]), changes)
            }
            Action::DisableProfile { uuid, .. } => autoconnect_argv(uuid, false),
            Action::EnableProfile { uuid, .. } => autoconnect_argv(uuid, true),
            Action::DeactivateProfile { uuid, .. } => argv(&["nmcli", "con", "down", "uuid", uuid]),
            Action::DeleteProfile { uuid, .. } | Action::DeletePort { uuid, .. } => {
                argv(&["nmcli", "con", "delete", "uuid", uuid])
            }
            Action::CreatePort {
                port,
                conn_name,
                master,
                autoconnect,
                ..
            } => {
                let mut v = argv(&["nmcli", "con", "add", "type", "bridge-slave", "ifname"]);
                v.extend([port.clone(), "master".into(), fill(master)]);
                v.extend(["con-name".into(), conn_name.clone()]);
                if let Some(a) = autoconnect {
                    v.extend(argv(&["connection.autoconnect", yes_no(*a)]));
                }
                v
            }
            Action::RestoreProfile { uuid, .. } => up(&Ref::Uuid(uuid.clone())),
            Action::ActivateBridge { bridge, .. } => up(bridge),
            Action::ActivatePort { port, .. } => up(port),
            Action::DeleteAll { uuids, .. } => {
                let mut v = argv(&["nmcli", "con", "delete"]);
                for u in uuids {
                    v.extend(argv(&["uuid", u]));
                }
                v
            }
            Action::GiveBack {
                port,
                conn_name,
                settings,
            } => with_pairs(
                argv(&[
                    "nmcli", "con", "add", "type", "ethernet", "ifname", port, "con-name",
                    conn_name,
                ]),
                settings,
            ),
            Action::ActivateGivenBack { profile, .. } => up(profile),
            _ => return self.bookkeeping_command(),
        };
        Command::new(words)
    }
}

impl Step for Action {
    fn summary(&self) -> String {
        match self {
            Action::CreateBridge { conn_name, .. } => format!("create bridge profile {conn_name}"),
            Action::ModifyBridge {
                conn_name, changes, ..
            } => {
                let what: Vec<&str> = changes
                    .iter()
                    .filter(|(k, _)| k != "bridge.mac-address")
                    .map(|(k, _)| k.as_str())
                    .collect();
                format!("set {} on bridge profile {conn_name}", what.join(", "))
            }
            Action::DisableProfile { id, port, .. } => {
                format!("switch off autoconnect of profile {id} that would hold {port}")
            }
            Action::DeactivateProfile { id, .. } => format!("deactivate profile {id}"),
            Action::DeleteProfile { id, port, .. } => {
                format!("delete profile {id} that would hold {port}")
            }
            Action::CreatePort {
                port,
                bridge_name,
                conn_name,
                ..
            } => format!("create port profile {conn_name} for {port} in {bridge_name}"),
            Action::ModifyPort { id, repair, .. } => match repair {
                Some(r) => format!(
                    "repair port profile {id}: its master '{}' is not usable, set it to {}",
                    r.was, r.bridge_uuid
                ),
                None => format!("set connection.autoconnect on port profile {id}"),
            },
            Action::DeletePort { id, port, .. } => format!(
                "delete port profile {id} ({} is not in ports)",
                port.as_deref().unwrap_or("no interface")
            ),
            Action::EnableProfile { id, .. } => {
                format!("switch autoconnect of profile {id} back on")
            }
            Action::RestoreProfile { id, port, .. } => {
                format!("activate profile {id} on {port} again")
            }
            Action::ActivateBridge {
                conn_name,
                name,
                new_mac,
                ..
            } => {
                if *new_mac {
                    format!("re-activate {conn_name} so that {name} takes the new MAC address")
                } else {
                    format!("activate {conn_name}")
                }
            }
            Action::Reapply { name, .. } => format!("apply the changed settings to {name}"),
            Action::ActivatePort {
                ifname,
                bridge_name,
                ..
            } => format!("activate port {ifname} in {bridge_name}"),
            Action::DeleteAll { ids, .. } => format!("delete profiles {}", ids.join(", ")),
            Action::GiveBack {
                port, conn_name, ..
            } => format!(
                "create profile {conn_name} for {port} with the IP configuration {port} had before the bridge took it over"
            ),
            Action::ActivateGivenBack { port, .. } => format!("activate that profile on {port}"),
            _ => self.bookkeeping_summary(),
        }
    }

    fn command(&self) -> Option<Command> {
        match self {
            Action::Checkpoint { .. } | Action::Commit | Action::Reapply { .. } => None,
            _ => Some(self.command_with(&Ref::shown)),
        }
    }

    fn bus_call(&self) -> Option<BusCall> {
        match self {
            Action::Checkpoint { devices, timeout } => {
                let paths: Vec<String> = devices
                    .iter()
                    .map(|d| format!("<D-Bus path of {d}>"))
                    .collect();
                Some(checkpoint::create_call(&paths, *timeout))
            }
            Action::Commit => Some(checkpoint::commit_call(checkpoint::PLACEHOLDER)),
            Action::Reapply { name, .. } => Some(device::reapply_call(&device_placeholder(name))),
            _ => None,
        }
    }
}

impl Action {
    /// The commands of the steps that keep this module's own files (the memory file, the
    /// pending-checkpoint marker); the checkpoint's two steps are D-Bus calls.
    fn bookkeeping_command(&self) -> Command {
        let words = match self {
            Action::MakeMemoryDir => argv(&["mkdir", "-p", "-m", "0700", DIR]),
            Action::Remember { bridge, body } => {
                return Command::new(["tee", &memory::path(bridge)]).with_stdin(body.clone())
            }
            Action::Forget { bridge } => argv(&["rm", "-f", &memory::path(bridge)]),
            Action::MakeRunDir => argv(&["mkdir", "-p", "-m", "0700", checkpoint::RUN_DIR]),
            Action::MarkCheckpoint {
                bridge,
                memory_before,
                taps,
            } => {
                return checkpoint::marker_command(bridge, None, memory_before.as_ref(), taps);
            }
            Action::PutBackMemory { bridge, text } => match text {
                Some(t) => {
                    return Command::new(["tee", &memory::path(bridge)]).with_stdin(t.clone())
                }
                None => argv(&["rm", "-f", &memory::path(bridge)]),
            },
            Action::Reattach { tap, bridge } => {
                argv(&["ip", "link", "set", "dev", tap, "master", bridge])
            }
            Action::Unmark { bridge } | Action::ClearMarker { bridge } => {
                argv(&["rm", "-f", &checkpoint::marker_path(bridge)])
            }
            _ => Vec::new(), // Checkpoint, Commit: D-Bus calls (bus_call)
        };
        Command::new(words)
    }

    fn bookkeeping_summary(&self) -> String {
        match self {
            Action::MakeMemoryDir => format!("create {DIR}"),
            Action::Remember { bridge, .. } => format!(
                "remember what to give back to {bridge}'s ports in {}",
                memory::path(bridge)
            ),
            Action::Forget { bridge } => {
                format!("forget what was to be given back to {bridge}'s ports")
            }
            Action::Checkpoint { devices, timeout } => format!(
                "take a NetworkManager checkpoint of {} (rolled back after {timeout} s unless verified)",
                devices.join(", ")
            ),
            Action::MakeRunDir => format!("create {}", checkpoint::RUN_DIR),
            Action::MarkCheckpoint { bridge, .. } => format!(
                "note the pending checkpoint in {}",
                checkpoint::marker_path(bridge)
            ),
            Action::PutBackMemory { bridge, .. } => format!(
                "put {} back as it was before an interrupted run that NetworkManager rolled back",
                memory::path(bridge)
            ),
            Action::Reattach { tap, bridge } => format!(
                "put {tap} back into {bridge} (NetworkManager's rollback of an interrupted run detached it)"
            ),
            Action::Commit => {
                "verify that the host is reachable and commit the checkpoint".to_string()
            }
            Action::Unmark { bridge } => format!("remove {}", checkpoint::marker_path(bridge)),
            Action::ClearMarker { bridge } => format!(
                "remove {}, left by an interrupted run whose checkpoint NetworkManager no longer holds",
                checkpoint::marker_path(bridge)
            ),
            _ => String::new(),
        }
    }
}

impl Action {
    /// Whether the step makes the running bridge take a change: reapplied, or activated
    /// (again) with its ports.
    pub fn runs_the_bridge(&self) -> bool {
        matches!(self, Action::Reapply { .. } | Action::ActivateBridge { .. })
    }

    /// The profiles this run creates that the step's command names.
    fn new_refs(&self) -> Vec<&Ref> {
        let refs: Vec<&Ref> = match self {
            Action::CreatePort { master, .. } => vec![master],
            Action::ActivateBridge { bridge, .. } => vec![bridge],
            Action::ActivatePort { port, .. } => vec![port],
            Action::ActivateGivenBack { profile, .. } => vec![profile],
            Action::Reapply { ports, .. } => ports.iter().collect(),
            _ => Vec::new(),
        };
        refs.into_iter()
            .filter(|r| !matches!(r, Ref::Uuid(_)))
            .collect()
    }
}

/// The UUID a step names: known, or assigned by NetworkManager earlier in this run.
fn resolve(d: &Desired, r: &Ref) -> Option<String> {
    match r {
        Ref::Uuid(u) => Some(u.clone()),
        Ref::NewBridge(_) => d.bridge.uuid.clone(),
        Ref::NewPort { port, .. } => d
            .ports
            .iter()
            .find(|t| t.name.as_deref() == Some(port.as_str()))
            .and_then(|t| t.uuid.clone()),
        Ref::NewProfile { port, .. } => d
            .given_back
            .iter()
            .find(|t| t.name.as_deref() == Some(port.as_str()))
            .and_then(|t| t.uuid.clone()),
    }
}

/// Run the steps in order, filling in the UUIDs NetworkManager assigns. A checkpoint is
/// taken where the plan has one; a step that fails after it rolls everything back (a failed
/// nmcli names the NetworkManager version: one `nmcli --version`, only then). The commit
/// is verify's (it comes after the checks).
pub fn apply(ctx: &mut Ctx, plan: &mut Plan) -> Result<()> {
    let steps = plan.actions.clone();
    for step in &steps {
        match step {
            Action::Checkpoint { .. } => checkpoint::take(ctx, step, plan)?,
            Action::Commit => break, // it, and removing the marker, are verify's
            _ => {
                if let Err(e) = run_step(ctx, step, plan) {
                    let e = kvmnet_nmcli::conn::explain_failure(ctx, e);
                    return Err(checkpoint::roll_back(ctx, plan, e));
                }
            }
        }
    }
    drop_gone_deletion(plan);
    set_values(plan);
    Ok(())
}

fn run_step(ctx: &mut Ctx, step: &Action, plan: &mut Plan) -> Result<()> {
    if let Some(r) = step
        .new_refs()
        .into_iter()
        .find(|r| resolve(&plan.desired, r).is_none())
    {
        return Err(Error::bug(format!(
            "{}: {} is not known (the step that creates it did not run first)",
            step.summary(),
            r.shown()
        )));
    }
    let d = &plan.desired;
    if matches!(step, Action::Reapply { .. }) {
        return reapply(ctx, step, d);
    }
    let command = match step {
        Action::MarkCheckpoint {
            bridge,
            memory_before,
            taps,
        } => {
            checkpoint::marker_command(bridge, d.checkpoint.as_ref(), memory_before.as_ref(), taps)
        }
        _ => step.command_with(&|r| resolve(d, r).unwrap_or_else(|| r.shown())),
    };
    run(ctx, step, &command, &mut plan.desired)
}

fn run(ctx: &mut Ctx, step: &Action, command: &Command, d: &mut Desired) -> Result<()> {
    match step {
        Action::CreateBridge { .. } | Action::CreatePort { .. } | Action::GiveBack { .. } => {
            let out = ctx.run_step(step, command, |_| false)?;
            record_uuid(step, &out, d)
        }
        Action::DeleteAll { uuids, .. } => {
            let out = ctx.run_step(step, command, |o| o.rc == 10)?;
            if conn::deleted_nothing(&out, uuids) {
                ctx.forget_last_write();
                d.already_gone = true;
            }
            Ok(())
        }
        Action::RestoreProfile { .. } => {
            if let Err(e) = ctx.run_step(step, command, |_| false) {
                ctx.warn(format!("could not {}: {}", step.summary(), e.msg));
            }
            Ok(())
        }
        _ => ctx.run_step(step, command, |_| false).map(drop),
    }
}

/// Reapply the changed settings to the running bridge; only where NetworkManager refuses
/// such a change to a running device (NetworkManager 1.30 for any bridge setting) is the
/// bridge re-activated, then its ports. Any other failure is the step's failure.
fn reapply(ctx: &mut Ctx, step: &Action, d: &Desired) -> Result<()> {
    let Action::Reapply {
        name,
        bridge,
        ports,
    } = step
    else {
        return Err(Error::bug("reapply: not a reapply step"));
    };
    let Some(path) = device::path_by_iface(ctx, name)? else {
        return Err(Error::verification(format!(
            "NetworkManager has no device {name} to apply the changed settings to"
        )));
    };
    match ctx.run_bus_step(step, &device::reapply_call(&path)) {
        Ok(_) => Ok(()),
        Err(e) if device::is_reapply_refused(&e) => reactivate(ctx, bridge, ports, d),
        Err(e) => Err(e),
    }
}

/// A deletion that found every profile gone is no step of this run: without it the plan
/// may have nothing left (`changed: false`), and the diff shows no deletion.
fn drop_gone_deletion(plan: &mut Plan) {
    if !plan.desired.already_gone {
        return;
    }
    let mut ids: Vec<String> = Vec::new();
    plan.actions.retain(|a| match a {
        Action::DeleteAll { ids: i, .. } => {
            ids.extend(i.iter().cloned());
            false
        }
        _ => true,
    });
    plan.diffs.retain(|d| {
        !(d.after == ""
            && ids
                .iter()
                .any(|i| d.before_header == format!("nm profile {i}")))
    });
    if !plan.changed() {
        plan.msg = Some(format!(
            "no bridge profile for {}: nothing to remove (its profiles {} were deleted by another actor after this run read them)",
            plan.desired.name,
            ids.join(", ")
        ));
    }
}

fn reactivate(ctx: &mut Ctx, bridge: &str, ports: &[Ref], d: &Desired) -> Result<()> {
    ctx.write(&["nmcli", "con", "up", "uuid", bridge], None)?;
    for p in ports {
        let u = resolve(d, p).unwrap_or_else(|| p.shown());
        ctx.write(&["nmcli", "con", "up", "uuid", &u], None)?;
    }
    Ok(())
}

/// The UUID NetworkManager gave the profile a create step made, kept for later steps,
/// verify and the return values.
fn record_uuid(step: &Action, out: &Output, d: &mut Desired) -> Result<()> {
    let Some(uuid) = added_uuid(&out.stdout) else {
        return Err(Error::verification(format!(
            "{}: NetworkManager's answer names no UUID for the new profile: {:?}",
            step.summary(),
            out.stdout.trim()
        )));
    };
    match step {
        Action::CreateBridge { .. } => d.bridge.uuid = Some(uuid),
        Action::CreatePort { port, .. } | Action::GiveBack { port, .. } => {
            let targets = match step {
                Action::GiveBack { .. } => &mut d.given_back,
                _ => &mut d.ports,
            };
            if let Some(t) = targets
                .iter_mut()
                .find(|t| t.name.as_deref() == Some(port.as_str()))
            {
                t.uuid = Some(uuid);
            }
        }
        _ => {}
    }
    Ok(())
}
