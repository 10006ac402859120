//! The input signature of every method the kvmnet modules call, from NetworkManager's
//! D-Bus API reference. [`SystemBus`](crate::SystemBus) types a call's JSON arguments by
//! it; a method missing here is refused before anything is sent.

/// `(interface, member, argument signatures in order)`.
const METHODS: &[(&str, &str, &[&str])] = &[
    (
        "org.freedesktop.NetworkManager",
        "GetDeviceByIpIface",
        &["s"],
    ),
    ("org.freedesktop.NetworkManager", "GetDevices", &[]),
    ("org.freedesktop.NetworkManager", "GetAllDevices", &[]),
    (
        "org.freedesktop.NetworkManager",
        "CheckpointCreate",
        &["ao", "u", "u"],
    ),
    (
        "org.freedesktop.NetworkManager",
        "CheckpointDestroy",
        &["o"],
    ),
    (
        "org.freedesktop.NetworkManager",
        "CheckpointRollback",
        &["o"],
    ),
    (
        "org.freedesktop.NetworkManager",
        "CheckpointAdjustRollbackTimeout",
        &["o", "u"],
    ),
    (
        "org.freedesktop.NetworkManager.Settings",
        "ListConnections",
        &[],
    ),
    (
        "org.freedesktop.NetworkManager.Settings",
        "GetConnectionByUuid",
        &["s"],
    ),
    (
        "org.freedesktop.NetworkManager.Settings.Connection",
        "GetSettings",
        &[],
    ),
    (
        "org.freedesktop.NetworkManager.Device",
        "Reapply",
        &["a{sa{sv}}", "t", "u"],
    ),
    ("org.freedesktop.DBus.Properties", "Get", &["s", "s"]),
    ("org.freedesktop.DBus.Properties", "GetAll", &["s"]),
];

/// The argument signatures of `interface.member`, if this crate knows the method.
pub fn of(interface: &str, member: &str) -> Option<&'static [&'static str]> {
    METHODS
        .iter()
        .find(|(i, m, _)| *i == interface && *m == member)
        .map(|(_, _, s)| *s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_and_unknown_methods() {
        assert_eq!(
            super::of("org.freedesktop.NetworkManager", "CheckpointCreate"),
            Some(&["ao", "u", "u"][..])
        );
        assert_eq!(super::of("org.freedesktop.NetworkManager", "Reload"), None);
    }
}
