//! NetworkManager's keyfile folders as an index: which profiles name an interface, without
//! asking NetworkManager (or nmcli) about every profile of the host. Only to find them:
//! what they hold is read over D-Bus ([`view`](crate::view)), as NetworkManager has it.
//! Profiles stored by another settings plugin (ifcfg-rh, ifupdown) are not in these
//! folders; neither plugin can store a macvlan profile, which NetworkManager therefore
//! always keeps as a keyfile.

use kvmnet_nmcli::{parse_keyfile, Profile};
use kvmnet_protocol::Ctx;

/// Where NetworkManager keeps keyfiles: saved profiles, in-memory ones, read-only ones.
pub const DIRS: &[&str] = &[SAVED, IN_MEMORY, READ_ONLY];
pub const SAVED: &str = "/etc/NetworkManager/system-connections";
/// Also where NetworkManager keeps the profiles it generates for devices others made (one
/// per guest's tap).
pub const IN_MEMORY: &str = "/run/NetworkManager/system-connections";
pub const READ_ONLY: &str = "/usr/lib/NetworkManager/system-connections";

/// The keyfile profiles `select` accepts (each UUID once), as their files say, among the
/// files of `dirs` whose text holds `hint` (a cheap test before parsing: a module's
/// profiles are a few among hundreds).
pub fn profiles_where(
    ctx: &mut Ctx,
    dirs: &[&str],
    hint: &str,
    select: impl Fn(&Profile) -> bool,
) -> Vec<Profile> {
    let mut out: Vec<Profile> = Vec::new();
    for dir in dirs {
        for name in ctx.list_dir(dir) {
            if !name.ends_with(".nmconnection") {
                continue;
            }
            let Some(text) = ctx.read_file(&format!("{dir}/{name}")) else {
                continue;
            };
            if !text.contains(hint) {
                continue;
            }
            let p = parse_keyfile(&text);
            if !p.uuid().is_empty() && select(&p) && !out.iter().any(|x| x.uuid() == p.uuid()) {
                out.push(p);
            }
        }
    }
    out
}
