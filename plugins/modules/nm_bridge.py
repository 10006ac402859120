#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmnet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
#
# Documentation only. The module is the static binary files/bin/<arch>/nm_bridge of this collection
# (built from modules/nm_bridge in the source tree); the action plugin plugins/action/nm_bridge.py sends it
# to the host and runs it there in one ssh round trip. The managed host needs no Python.

from __future__ import annotations

DOCUMENTATION = r'''
module: nm_bridge
short_description: A NetworkManager bridge and its ports, for KVM guests on the host's LAN
version_added: 0.1.0
author:
  - kvmnet contributors (!UNKNOWN)
description:
  - Declares a Linux bridge made by NetworkManager (the tutorial's method 1, C(nmcli con add type bridge)
    plus one C(bridge-slave) profile per port) and makes the host match it, idempotently.
  - Existing profiles are recognised however they were made (by hand, by the tutorial's commands, by other
    tools), by interface name and by UUID; duplicate profile names are handled, and no duplicate profile is
    ever created. A port whose master holds the bridge's profile I(name) (which NetworkManager can never
    activate) is repaired to the bridge's UUID.
  - Only the options given are compared; settings not given are left as they are (new profiles get
    NetworkManager's defaults).
  - With I(state=present) the bridge profile is active and each listed port is active in it, verified in the
    kernel (the bridge exists, each port's master is the bridge, requested STP, forward delay, priority, MTU,
    MAC and addresses in effect). Settings changed on an active bridge reach the kernel through
    NetworkManager's C(Device.Reapply) over D-Bus (the device named as data, so a bridge called C(--ask) is a
    bridge of that name); where NetworkManager refuses to reapply a change to a running device (1.30 for any bridge setting), and
    only then, the bridge is re-activated, then its ports. A MAC change re-activates the bridge and its ports.
  - When nothing has to change, reads the host with one C(ip -j -d addr show) and NetworkManager's D-Bus API
    (no C(nmcli)), asking only about the devices of the bridge, its ports and the host's NICs and the
    profiles they can activate, with the saved keyfiles as an index (15 calls on a host with two NICs,
    whatever the number of profiles or guests' taps on the host). A run that finds a change plans it from C(nmcli)'s full read
    (two C(nmcli) calls and one C(ip)).
  - Moves a remote host's only uplink into the bridge over that same link without losing the host. With
    I(inherit=true) the bridge takes over what the NIC carries - the IP configuration of the profile active on
    it and its MAC address - so the host keeps its address (a DHCP server hands the bridge the same lease).
  - Every change that can cut the host off runs inside a NetworkManager checkpoint (D-Bus
    C(CheckpointCreate) of the devices involved) - a port that carries a global address joins the bridge, a
    port leaves a bridge that carries one, a bridge that carries one takes any change while it runs
    (reapplied or re-activated, be it STP, forward delay, priority, MTU, addresses, routes or MAC; its
    ports are in the checkpoint too), I(state=absent) gives a port its profile back. The module then verifies that the
    host is reachable - the expected addresses on the bridge (the DHCP lease the port had) or on every port
    I(state=absent) gives back, a default route of each family there was one of, and the IPv4 gateway
    answering an ARP request (no C(ping) or C(arping) needed) - and commits. If any of that does not hold
    within the timeout, it rolls back at once and fails, saying so and what did not hold (C(changed=false);
    C(changed=true) and C(not_restored) naming them if NetworkManager could not restore some devices). If
    the module is killed or the controller goes away before it commits, NetworkManager rolls back by itself
    after I(rollback_timeout) seconds.
  - Refuses, before changing anything, to make a port of a NIC that carries a global IPv4 or IPv6 address
    unless the task sets I(inherit) or the bridge's I(ipv4) (for IPv4 addresses) or I(ipv6) (for IPv6
    addresses), since the host could lose its connection.
  - Refuses (C(error_kind=not_supported)), before changing anything, to take a port that the kernel has in
    another bridge or bond no NetworkManager profile holds (one made with C(ip link) or another tool), which
    that would silently break. The message names it; free the port first (C(ip link set dev PORT nomaster)) or
    manage that bridge with this module.
options:
  name:
    description:
      - The bridge's interface name (C(connection.interface-name)), at most 15 bytes, without C(/), C(:) or
        whitespace.
    type: str
    required: true
  conn_name:
    description:
      - The bridge profile's name (C(connection.id)). Any text, C(:) and C(\) included.
      - Defaults to C(bridge-<name>) when the profile is created; an existing profile keeps its name unless
        this option is given (then it is renamed).
    type: str
  ports:
    description:
      - The full set of the bridge's ports (NICs that must exist). New port profiles are named
        C(bridge-slave-<port>); existing ones keep their names.
      - Ports enslaved through this bridge's profiles but not listed are removed (their profiles deleted,
        and the profiles I(port_profiles=disable) switched off for them given back).
      - Omitted, the ports are left as they are; an empty list means no ports.
      - A comma-separated string is accepted.
    type: list
    elements: str
  port_profiles:
    description:
      - What to do with other profiles bound to a listed port (by interface name or MAC address) or active
        on it, which would keep the port from joining the bridge.
      - C(disable) switches their autoconnect off and deactivates them, and remembers them in
        C(/var/lib/kvmnet/nm_bridge/<name>.json) so that I(state=absent) gives them back.
      - C(delete) deletes them (what the tutorial does with C(nmcli con delete ens32)).
      - C(keep) leaves them; a port held by one then stays out of the bridge, with a warning.
    type: str
    choices: [disable, delete, keep]
    default: disable
  stp:
    description: Spanning tree protocol (C(bridge.stp)). NetworkManager's default for new bridges is on.
    type: bool
  forward_delay:
    description: STP forward delay in seconds (C(bridge.forward-delay)), 2 to 30.
    type: int
  priority:
    description: STP bridge priority (C(bridge.priority)), 0 to 65535.
    type: int
  mtu:
    description: The bridge's MTU (C(802-3-ethernet.mtu)), 68 to 65535.
    type: int
  mac:
    description:
      - The bridge's MAC address (C(802-3-ethernet.cloned-mac-address); a value in the deprecated
        C(bridge.mac-address) is recognised and cleared). Any case, C(:) or C(-) separated.
      - Changing it re-activates the bridge and its ports (NetworkManager cannot reapply it).
    type: str
    aliases: [mac_address]
  autoconnect:
    description: Autoconnect of the bridge profile and of its port profiles (C(connection.autoconnect)).
    type: bool
  inherit:
    description:
      - The bridge takes over what the port it takes in carries, so that the host keeps its identity on the LAN.
        From the profile active on the port, its IP configuration (the C(ipv4.*) and C(ipv6.*) properties
          that are not at NetworkManager's default - method, addresses, gateway, routes, route metric and table,
          routing rules, DNS servers, search domains and options, the C(ignore-auto-*), C(never-default) and
          C(may-fail) flags, the DHCP client settings such as C(dhcp-client-id), C(dhcp-hostname), C(dhcp-iaid)
          and C(dhcp-duid), IPv6 address generation and privacy); from the kernel, the port's MAC address
          (C(802-3-ethernet.cloned-mac-address) of the bridge), so a DHCP server hands back the same lease and
          switches' port security keeps working.
      - Only one port may carry addresses. The sub-options given in I(ipv4) and I(ipv6), and I(mac), win one
        by one (I(ipv4={dns=[...]}) replaces only the DNS servers); an explicit method that takes no addresses
        (C(disabled), C(link-local), C(ignore)) takes nothing of that family.
      - What the bridge inherited is remembered in C(/var/lib/kvmnet/nm_bridge/<name>.json), so that
        I(state=absent) can give the port a plain profile carrying it when its own profile was deleted
        (I(port_profiles=delete)).
      - A port already in the bridge carries nothing to inherit; a rerun on a bridge that holds what it
        inherited reports no change.
    type: bool
    default: false
  rollback_timeout:
    description:
      - Seconds, 10 to 3600, after which NetworkManager rolls back a change that can cut the host off unless
        the module has verified the host reachable and committed the change. The module verifies for up to
        the timeout less a margin (a quarter of it, 3 to 15 s) and then rolls back itself.
      - With STP on (NetworkManager's default for new bridges) a new bridge forwards only after about 30 s
        (twice the forward delay); keep the default 60 or more then.
    type: int
    default: 60
  ipv4:
    description:
      - IPv4 settings of the bridge. Only the sub-options given are compared; with I(inherit), the others come
        from the port the bridge takes over.
    type: dict
    suboptions:
      method:
        description: C(ipv4.method). C(manual) needs I(addresses); C(disabled) and C(link-local) take none.
        type: str
        choices: [auto, manual, disabled, link-local, shared]
      addresses:
        description: Addresses with prefix length, in order (C(ipv4.addresses)), for example C(192.0.2.10/24).
        type: list
        elements: str
      gateway:
        description: Default gateway (C(ipv4.gateway)); needs I(addresses).
        type: str
      dns:
        description: DNS servers (C(ipv4.dns)).
        type: list
        elements: str
  ipv6:
    description:
      - IPv6 settings of the bridge, as for I(ipv4).
    type: dict
    suboptions:
      method:
        description: C(ipv6.method). C(manual) needs I(addresses).
        type: str
        choices: [auto, dhcp, manual, disabled, ignore, link-local, shared]
      addresses:
        description: Addresses with prefix length (C(ipv6.addresses)), for example C(2001:db8::10/64).
        type: list
        elements: str
      gateway:
        description: Default gateway (C(ipv6.gateway)); needs I(addresses).
        type: str
      dns:
        description: DNS servers (C(ipv6.dns)).
        type: list
        elements: str
  state:
    description:
      - C(present) creates or adjusts the profiles and activates the bridge and its ports.
      - C(absent) deletes every bridge profile for I(name) and their port profiles, and gives each port back
        the profile I(port_profiles=disable) switched off (autoconnect on again, re-activated if it was
        active), or, when the bridge took over a port's configuration (I(inherit)) and that port's profile
        was deleted since, a plain profile C(<its old name>) carrying what the bridge had inherited. When the
        bridge carries a global address and a port gets a profile back, this runs inside a checkpoint and
        is verified like a takeover. The other options may stay in the task; they are ignored.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description:
      - Nothing is written (no profile, keyfile, kernel change or memory file); C(commands) lists every command
        the real run would run and C(diff) shows the changes.
  diff_mode:
    support: full
    description:
      - Before and after of the tracked properties of the bridge profile, each port profile and each profile
        switched off, deleted or given back; creation has an empty before, deletion an empty after.
  platform:
    support: full
    platforms: posix
    description: Linux hosts with NetworkManager 1.22 or later (EL8+, Debian 11+, Ubuntu 20.04+).
notes:
  - Runs as root (C(become=true)). NetworkManager must be running and manage the ports; otherwise the module
    fails before changing anything. Both C(connection.master)/C(slave-type) (NetworkManager up to 1.44) and
    C(connection.controller)/C(port-type) (newer) are understood.
  - Profiles are addressed by UUID in every command, so names with C(:), C(\) or duplicates are safe.
  - Several kvmnet modules on one host take turns through a lock in C(/run/lock/kvmnet.lock).
  - NetworkManager's checkpoints are its own, in memory. The module notes the one it takes in
    C(/run/kvmnet/nm_bridge/<name>.checkpoint) until it commits or rolls back; a run while an interrupted
    run's checkpoint is still pending fails (C(error_kind=busy)) saying when NetworkManager rolls it back, and
    changes nothing; a run after that rollback puts back what the interrupted run had written in
    C(/var/lib/kvmnet/nm_bridge/), puts guests' taps NetworkManager detached back into the bridge, and
    removes the note. The note names the checkpoint by its path, creation time and devices, so a checkpoint
    another client holds at the same path (NetworkManager numbers them from 1 again after a restart) is not
    taken for it. A device in a checkpoint of another client is refused the same way.
  - The checkpoint is taken with C(DELETE_NEW_CONNECTIONS) (a rollback deletes the profiles the run made and
    brings back the ones it deleted) on the devices NetworkManager has when the run starts (a bridge still to
    be made is not one; its profile goes with the rollback). NetworkManager before 1.38 (Debian 11) detaches
    ports it did not make, such as running guests' taps, from a bridge it rolls back; the module puts them
    back into the bridge after its own rollback, and, after NetworkManager rolled back by itself (the module
    was killed), on its next run (C(ip link set dev TAP master BRIDGE), listed in C(commands)).
  - Only the IPv4 gateway is probed (an ARP request); an IPv6-only default route is checked for presence.
  - Tested on NetworkManager 1.30 (Debian 11), 1.42 (Debian 12) and 1.52 (Debian 13), with Ansible reaching
    the host over the very NIC the bridge takes over. Expected to work but not tested here - NetworkManager
    1.22 (Ubuntu 20.04), 1.36 (Ubuntu 22.04), 1.40 (EL8) and 1.46 (Ubuntu 24.04).
requirements:
  - NetworkManager (nmcli, and its D-Bus API for the no-change read and the checkpoints) and iproute2 with
    JSON output (C(ip -j)) on the managed host.
seealso:
  - module: kvmnet.network.macvtap_link
  - module: kvmnet.network.libvirt_net
  - module: kvmnet.network.domain_iface
  - module: community.general.nmcli
'''

EXAMPLES = r'''
# The host's only NIC, over which Ansible reaches it, into br0: br0 takes over ens32's address
# (its DHCP lease or static settings) and MAC address; rolled back unless the host stays reachable.
- name: Bridge br0 over the uplink, keeping the host's address
  kvmnet.network.nm_bridge:
    name: br0
    ports: [ens32]
    stp: false
    inherit: true
  become: true

# The tutorial's method 1: br0 over ens32; the old ens32 profile is deleted as in the tutorial.
# The bridge gets its address by DHCP (NetworkManager's default).
- name: Bridge br0 with port ens32, as the tutorial does by hand
  kvmnet.network.nm_bridge:
    name: br0
    ports: [ens32]
    port_profiles: delete
    ipv4:
      method: auto
  become: true

# The same with a static address, STP off, and the old profile only switched off (given back on absent).
- name: Bridge br0 with a static address
  kvmnet.network.nm_bridge:
    name: br0
    conn_name: bridge-br0
    ports: [ens32]
    stp: false
    ipv4:
      method: manual
      addresses: [192.0.2.10/24]
      gateway: 192.0.2.1
      dns: [192.0.2.53]
    ipv6:
      method: disabled
  become: true

- name: Show what would change, without changing anything
  kvmnet.network.nm_bridge:
    name: br0
    ports: [ens32, ens33]
    stp: false
  check_mode: true
  diff: true
  become: true

- name: Remove br0 and give ens32 its old profile back
  kvmnet.network.nm_bridge:
    name: br0
    state: absent
  become: true
'''

RETURN = r'''
msg:
  description: One sentence saying what was done (or would be done in check mode).
  returned: always
  type: str
  sample: Create bridge profile bridge-br0; create port profile bridge-slave-ens32 for ens32 in br0; activate bridge-br0; activate port ens32 in br0
changed:
  description: Whether anything was (or in check mode would be) changed.
  returned: always
  type: bool
  sample: true
commands:
  description:
    - The argv of every command that changed something, or would have in check mode.
    - NetworkManager chooses a new profile's UUID (older NetworkManager refuses one chosen by the caller);
      in check mode a command that names a profile yet to be made shows C(<uuid of NAME>) in its place.
  returned: always
  type: list
  elements: list
  sample:
    - [nmcli, con, add, type, bridge, ifname, br0, con-name, bridge-br0, bridge.stp, "no"]
    - [nmcli, con, up, uuid, 0800e1b1-566e-45fb-abb4-68d1fa8c8912]
diff:
  description:
    - Before and after of each profile touched (a list when several), with headers C(nm profile <name>).
      Values are NetworkManager's terse values, normalised; C(state) is the activation state.
  returned: when diff mode is on and something changes
  type: list
  elements: dict
  sample:
    - before_header: nm profile bridge-br0
      after_header: nm profile bridge-br0
      before: {bridge.stp: "yes", state: activated}
      after: {bridge.stp: "no", state: activated}
bridge:
  description:
    - The bridge profile. C(uuid) is null in check mode for a profile not yet created, and after I(state=absent).
  returned: always
  type: dict
  sample: {name: br0, uuid: 0800e1b1-566e-45fb-abb4-68d1fa8c8912, conn_name: bridge-br0}
  contains:
    name:
      description: Interface name.
      type: str
    uuid:
      description: Profile UUID.
      type: str
    conn_name:
      description: Profile name.
      type: str
ports:
  description:
    - The port profiles (the listed ports, or the existing ones when I(ports) is omitted); empty after
      I(state=absent). C(active) is false for a port held by another profile under I(port_profiles=keep).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: ens32, uuid: f54dacb5-18b6-49c0-83a9-08ea275d3069, conn_name: bridge-slave-ens32, active: true}
restored:
  description:
    - With I(state=absent), the profiles given back to the ports - switched off ones, and plain ones made for
      a port whose profile the bridge took over and that was deleted since (C(uuid) null in check mode).
  returned: when state is absent
  type: list
  elements: dict
  sample:
    - {name: ens32, uuid: 18a5f3df-4183-49ae-8a60-58eb7e2462ee, conn_name: ens32}
takeover:
  description:
    - With I(inherit), what the bridge takes over from the port, as far as the task did not set it.
  returned: when a port's configuration is taken over
  type: dict
  sample:
    port: ens32
    profile: {uuid: 18050770-df62-4e87-9251-5c8b67c00d26, conn_name: ens32}
    mac: "fa:ab:1a:ed:7a:d4"
    settings: {ipv4.method: auto, ipv6.method: auto}
  contains:
    port:
      description: The port.
      type: str
    profile:
      description: The profile whose IP configuration is taken over (null when none was active on the port).
      type: dict
    mac:
      description: The port's MAC address, which the bridge takes (null when I(mac) is given).
      type: str
    settings:
      description: The inherited NetworkManager properties and their values.
      type: dict
checkpoint:
  description:
    - When the change runs inside a NetworkManager checkpoint - its devices, the rollback timeout and why the
      change could cut the host off.
  returned: when a change needs a checkpoint
  type: dict
  sample: {devices: [ens32], rollback_timeout: 60, why: ens32 carries 198.51.100.106/24}
  contains:
    devices:
      description: The interfaces in the checkpoint.
      type: list
      elements: str
    rollback_timeout:
      description: Seconds.
      type: int
    why:
      description: The devices that carry addresses the change could cut off.
      type: str
not_restored:
  description:
    - After a rollback, the interfaces NetworkManager could not restore (they may still hold the run's
      changes; C(changed) is then true).
  returned: when a rollback left some devices as the run made them
  type: list
  elements: str
  sample: [ens32]
warnings:
  description: Duplicate bridge profiles left alone, ports held under I(port_profiles=keep), and the like.
  returned: when there are any
  type: list
  elements: str
'''
