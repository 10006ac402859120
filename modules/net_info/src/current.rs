//! Every read of the host, each only when a gathered part needs it:
//!
//! - NetworkManager (bridges, macvtaps): the one list call, every profile's properties
//!   from its keyfile (no process; `nmcli con show` only for profiles stored another way).
//!   NetworkManager is optional: without it bridges and macvtaps come from the kernel alone.
//! - the kernel (bridges, macvtaps, guests): `ip -j -d addr show`, one process.
//! - libvirt (networks, guests): every network's and domain's state and definitions in
//!   two virsh processes (`virtxml::inventory`). Guests need the networks too (an
//!   interface's method depends on its network). Without libvirt: left out with a warning
//!   when `gather` was omitted, an error when the task named networks or guests.

use crate::params::{Params, Part};
use kvmnet_iproute::{read_links, Link};
use kvmnet_nmcli::conn::{self, Props};
use kvmnet_nmcli::Connections;
use kvmnet_protocol::{Ctx, Error, ErrorKind, Result};
use kvmnet_virtxml::inventory::{self, Inventory};

/// The settings read for a profile that is not a keyfile (`nmcli con show` fallback).
pub const SETTINGS: &str = "connection,bridge,macvlan,802-3-ethernet";

/// What one source gave.
#[derive(Debug)]
pub enum Source<T> {
    Read(T),
    /// No gathered part needs it.
    NotAsked,
    /// The host lacks it (the error says why); the parts built on it say so.
    Unavailable(Error),
}

impl<T> Source<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Source::Read(t) => Some(t),
            _ => None,
        }
    }
}

pub struct Current {
    pub nm: Source<Connections>,
    /// Every link with its addresses (empty when no part needs them).
    pub links: Vec<Link>,
    pub libvirt: Source<Inventory>,
}

pub fn read(ctx: &mut Ctx, p: &Params) -> Result<Current> {
    let nm = if p.needs_nm() {
        optional(conn::read(
            ctx,
            |r| r.kind != "loopback",
            Props::KeyfileFirst(SETTINGS),
        ))?
    } else {
        Source::NotAsked
    };
    let links = if p.needs_links() {
        read_links(ctx, true)?
    } else {
        Vec::new()
    };
    let libvirt = if p.needs_libvirt() {
        let read = inventory::read(ctx, &p.uri, p.wants(Part::Guests));
        match (read, p.explicit()) {
            (Err(e), true) if e.kind == ErrorKind::MissingDependency => {
                return Err(libvirt_needed(p, e))
            }
            (read, _) => optional(read)?,
        }
    } else {
        Source::NotAsked
    };
    Ok(Current { nm, links, libvirt })
}

/// A service that is not there is `Unavailable`; any other failure fails the run.
fn optional<T>(read: Result<T>) -> Result<Source<T>> {
    match read {
        Ok(t) => Ok(Source::Read(t)),
        Err(e) if e.kind == ErrorKind::MissingDependency => Ok(Source::Unavailable(e)),
        Err(e) => Err(e),
    }
}

/// The task named parts that libvirt holds, and the host has no libvirt to ask.
fn libvirt_needed(p: &Params, e: Error) -> Error {
    let asked: Vec<&str> = [Part::Networks, Part::Guests]
        .into_iter()
        .filter(|x| p.wants(*x))
        .map(Part::key)
        .collect();
    let msg = format!(
        "{}; gather names {}, which libvirt holds (leave gather out to report what a host without libvirt has, with a warning)",
        e.msg.trim_end_matches('.'),
        asked.join(" and ")
    );
    Error { msg, ..e }
}
