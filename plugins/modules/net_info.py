#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmnet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
#
# Documentation only. The module is the static binary net_info of this collection (built from
# modules/net_info in the source tree). The managed host needs no Python.

from __future__ import annotations

DOCUMENTATION = r'''
module: net_info
short_description: Report what a KVM host has for putting guests on the LAN
version_added: 0.1.0
author:
  - kvmnet contributors (!UNKNOWN)
description:
  - Reads the host's bridges with their ports, its macvtap links, its libvirt networks and
    every guest's interfaces, and returns them as facts, RV(ansible_facts.kvmnet_net), one
    list per part.
  - Says who made each bridge, port and macvtap link (a NetworkManager profile, libvirt for a
    network or a guest, or neither), and which of the three methods of putting guests on the
    LAN each guest interface amounts to - V(bridge) (a tap on a host bridge), V(private) (a
    macvtap in private mode) or V(direct_bridge) (a macvtap in bridge mode) - or what else it
    is.
  - Changes nothing, takes no lock, runs the same in check mode, and never reports
    C(changed).
  - Starts at most four processes, whatever the host holds - one C(nmcli) (profiles are read
    from their keyfiles; a profile stored another way, such as EL8's ifcfg, costs a second),
    one C(ip), and two C(virsh) (the names of every network and guest, then one batch of all
    their state and definitions). O(gather) limits both what is read and what is returned.
  - A static binary module; the managed host needs C(ip), and C(nmcli) and C(virsh) for the
    parts that come from NetworkManager and libvirt.
options:
  gather:
    description:
      - The parts to read and return, each under its own key of RV(ansible_facts.kvmnet_net).
      - V(bridges) and V(macvtaps) come from the kernel (C(ip)) and NetworkManager (C(nmcli)),
        V(networks) from libvirt, V(guests) from libvirt and the kernel (their devices).
        NetworkManager is optional - without it bridges and macvtap links are read from the
        kernel alone, their profile fields are null and a warning says so.
      - When omitted, every part is gathered, and a part whose service the host lacks (no
        C(virsh), libvirtd not running) is left out of the facts with a warning, so that the
        module can run across a fleet where some hosts have no libvirt.
      - When given, the host must have what the named parts need - naming V(networks) or
        V(guests) on a host without a reachable libvirtd fails.
      - A comma-separated string is accepted. An empty list is an error.
    type: list
    elements: str
    choices: [bridges, macvtaps, networks, guests]
  uri:
    description:
      - The libvirt connection URI.
      - A URI of another host (C(qemu+ssh://HOST/system)) reports that host's networks and guests
        without joining them with this host's bridges and links (the cross references and the
        interfaces' RV(ansible_facts.kvmnet_net.guests[].interfaces[].bridge) and C(parent) are
        null, and C(ip) is not run for guests alone).
    type: str
    default: qemu:///system
attributes:
  check_mode:
    support: full
    description:
      - The module only reads; check mode returns the same facts.
  diff_mode:
    support: none
    description:
      - Nothing changes, so there is nothing to show.
  facts:
    support: full
    description:
      - Returns RV(ansible_facts.kvmnet_net).
  platform:
    support: full
    platforms: posix
    description:
      - Linux KVM hosts (EL8+, Debian 11+, Ubuntu 20.04+).
      - Tested with NetworkManager 1.30, 1.42 and 1.52 and libvirt 7.0, 9.0 and 11.3 (Debian 11, 12 and
        13). Expected to work but not tested here - NetworkManager 1.22 and libvirt 6.0 (Ubuntu 20.04),
        1.36 and 8.0 (Ubuntu 22.04), 1.40 and 8.0 (EL8), 1.46 and 10.0 (Ubuntu 24.04).
notes:
  - Run as root (C(become=true)) to read NetworkManager's keyfiles and the system libvirtd; no
    Python is needed on the host (C(gather_facts=false) works).
  - What libvirt made is told apart from the rest only when the libvirt side is gathered too
    (the default) - libvirt's own bridges need V(networks) or V(guests), the taps and macvtaps
    of guests need V(guests). Otherwise they read as C(external), and the cross references
    (RV(ansible_facts.kvmnet_net.bridges[].networks), C(guest)) are null.
  - A network or guest that goes away while the module reads is left out.
seealso:
  - module: kvmnet.network.nm_bridge
    description: Make the host bridge of method 1.
  - module: kvmnet.network.macvtap_link
    description: Make the persistent macvtap link of method 2.
  - module: kvmnet.network.libvirt_net
    description: Make a libvirt network in any forward mode.
  - module: kvmnet.network.domain_iface
    description: Point a guest's interface at a network, a bridge or a NIC.
requirements:
  - ip (iproute2 with JSON output)
  - nmcli and NetworkManager >= 1.22 (optional, for the profiles)
  - virsh and libvirtd >= 6 (for networks and guests)
'''

EXAMPLES = r'''
- name: Read everything the host has for guests on the LAN (gather omitted - every part)
  kvmnet.network.net_info: {}
  become: true

- name: Show each guest interface and the method it amounts to
  ansible.builtin.debug:
    msg: "{{ item.0.name }} {{ item.1.mac }}: {{ item.1.method }} ({{ item.1.type }} {{ item.1.source }})"
  loop: "{{ kvmnet_net.guests | subelements('interfaces') }}"
  loop_control:
    label: "{{ item.0.name }}"

- name: The bridge br0 has the NIC as its port
  ansible.builtin.assert:
    that:
      - "'ens32' in (kvmnet_net.bridges | selectattr('name', 'equalto', 'br0') | first).ports | map(attribute='name')"

# A fleet where some hosts have no libvirt: only what every host has, never failing on libvirt.
- name: Bridges and macvtap links only
  kvmnet.network.net_info:
    gather: [bridges, macvtaps]
  become: true

- name: Guests of another libvirt connection
  kvmnet.network.net_info:
    gather: guests
    uri: qemu+ssh://root@kvm2.example.org/system
  become: true
'''

RETURN = r'''
msg:
  description: One sentence counting what was found.
  returned: always
  type: str
  sample: "Found 2 bridges, 1 macvtap link, 3 libvirt networks, 3 guests"
changed:
  description: Always false - the module only reads.
  returned: always
  type: bool
  sample: false
commands:
  description: Always empty - the module runs no command that changes anything.
  returned: always
  type: list
  elements: list
  sample: []
warnings:
  description:
    - A service the host lacks and what the facts leave out because of it (NetworkManager not
      running, libvirt not reachable when O(gather) was omitted).
  returned: when there are any
  type: list
  elements: str
  sample:
    - "NetworkManager is not running on this host: bridges and macvtap links are read from the
      kernel alone, without NetworkManager profiles (their origin and persistence are unknown:
      null)"
ansible_facts:
  description: The facts, set for the host.
  returned: always
  type: dict
  contains:
    kvmnet_net:
      description:
        - One key per gathered part (a part not gathered, or left out for a missing service, has
          no key). Every list is sorted by name.
      type: dict
      contains:
        bridges:
          description:
            - Every bridge the kernel has, and every NetworkManager bridge profile whose bridge
              is not there now (RV(ansible_facts.kvmnet_net.bridges[].present=false)).
          returned: when bridges are gathered
          type: list
          elements: dict
          contains:
            name:
              description: Interface name.
              type: str
              sample: br0
            origin:
              description:
                - V(networkmanager) - a NetworkManager profile holds it (one NetworkManager
                  stores, not one it generated for a device it found).
                - V(libvirt) - libvirt runs it for a network with its own bridge (nat, route,
                  open, isolated).
                - V(external) - neither (C(ip link), another tool).
                - Null when NetworkManager could not be read and libvirt did not make it.
              type: str
              sample: networkmanager
            conn_name:
              description: The NetworkManager bridge profile (the one active on it, else the first), or null.
              type: str
              sample: bridge-br0
            conn_uuid:
              description: That profile's UUID, or null.
              type: str
              sample: 825ba692-a982-4def-8cde-40f2630e162e
            autoconnect:
              description: That profile's autoconnect, or null.
              type: bool
              sample: true
            present:
              description: Whether the kernel has the bridge now.
              type: bool
              sample: true
            up:
              description: Whether the bridge is administratively up.
              type: bool
              sample: true
            carrier:
              description: Whether the bridge has carrier (the kernel's C(LOWER_UP)).
              type: bool
              sample: true
            mac:
              description: MAC address, lower case (null when not present).
              type: str
              sample: "5a:e9:59:b1:3b:3b"
            stp:
              description: Whether STP is on - the kernel's setting, or the profile's for a bridge not present.
              type: bool
              sample: false
            addresses:
              description: The bridge's addresses (IPv4 and IPv6, not link-local), address/prefix.
              type: list
              elements: str
              sample: ["192.0.2.10/24"]
            networks:
              description:
                - The libvirt networks on this bridge (forward bridge on a host bridge, or the
                  network whose own bridge it is). Null when libvirt was not read.
              type: list
              elements: str
              sample: [host-bridge]
            ports:
              description:
                - The bridge's ports - those attached in the kernel, and the NetworkManager port
                  profiles of its profile whose device is not attached now.
              type: list
              elements: dict
              contains:
                name:
                  description: Interface name.
                  type: str
                  sample: ens32
                kind:
                  description:
                    - V(nic) for a device without a link kind (a physical NIC), V(tap) for a tap
                      (a guest's), else the kernel's link kind (V(veth), V(bond), V(vlan), ...).
                      Null for a port profile whose device does not exist.
                  type: str
                  sample: nic
                attached:
                  description: Whether the kernel has it in the bridge now.
                  type: bool
                  sample: true
                origin:
                  description: As for the bridge; V(libvirt) for a running guest's tap.
                  type: str
                  sample: networkmanager
                conn_name:
                  description: The NetworkManager profile holding the port, or null.
                  type: str
                  sample: bridge-slave-ens32
                conn_uuid:
                  description: That profile's UUID, or null.
                  type: str
                  sample: f012698c-98cc-4c1c-b51f-213a319c461c
                guest:
                  description: The guest whose running interface this tap is (null otherwise, or when guests were not read).
                  type: str
                  sample: null
          sample:
            - name: br0
              origin: networkmanager
              conn_name: bridge-br0
              conn_uuid: 825ba692-a982-4def-8cde-40f2630e162e
              autoconnect: true
              present: true
              up: true
              carrier: true
              mac: "5a:e9:59:b1:3b:3b"
              stp: false
              addresses: ["192.0.2.10/24"]
              networks: [host-bridge]
              ports:
                - {name: ens32, kind: nic, attached: true, origin: networkmanager, conn_name: bridge-slave-ens32,
                   conn_uuid: f012698c-98cc-4c1c-b51f-213a319c461c, guest: null}
                - {name: vnet0, kind: tap, attached: true, origin: libvirt, conn_name: null, conn_uuid: null,
                   guest: vm-bridge}
        macvtaps:
          description:
            - Every macvtap link the kernel has (the tutorial's C(macvtap0), those libvirt makes
              for guests), and every NetworkManager macvlan profile with C(tap) whose link is
              not there now.
          returned: when macvtaps are gathered
          type: list
          elements: dict
          contains:
            name:
              description: Interface name.
              type: str
              sample: macvtap0
            origin:
              description: As for bridges; V(libvirt) for a running guest's macvtap.
              type: str
              sample: networkmanager
            conn_name:
              description: The NetworkManager macvlan profile for it, or null.
              type: str
              sample: macvlan-macvtap0
            conn_uuid:
              description: That profile's UUID, or null.
              type: str
              sample: c8080dad-66f6-4c8a-a3af-21a1b8e725f3
            autoconnect:
              description: That profile's autoconnect, or null.
              type: bool
              sample: true
            persistent:
              description:
                - Whether a NetworkManager profile holds the link, so that it comes back after a
                  reboot (as O(kvmnet.network.macvtap_link#module:persistent) means it). Null when
                  NetworkManager could not be read.
              type: bool
              sample: true
            present:
              description: Whether the kernel has the link now.
              type: bool
              sample: true
            up:
              description: Whether the link is administratively up.
              type: bool
              sample: true
            carrier:
              description: Whether the link has carrier (the kernel's C(LOWER_UP)).
              type: bool
              sample: true
            parent:
              description: The lower device (the NIC), or null when it is in another namespace.
              type: str
              sample: ens33
            mode:
              description: Macvtap mode (V(passthrough) for the kernel's C(passthru)).
              type: str
              sample: private
            mac:
              description: MAC address, lower case.
              type: str
              sample: "72:15:93:bc:9d:80"
            guest:
              description: The guest whose running interface this macvtap is (null otherwise, or when guests were not read).
              type: str
              sample: null
            networks:
              description: The libvirt networks whose device pool holds this link; null when libvirt was not read.
              type: list
              elements: str
              sample: [vtap]
          sample:
            - name: macvtap0
              origin: networkmanager
              conn_name: macvlan-macvtap0
              conn_uuid: c8080dad-66f6-4c8a-a3af-21a1b8e725f3
              autoconnect: true
              persistent: true
              present: true
              up: true
              carrier: true
              parent: ens33
              mode: private
              mac: "72:15:93:bc:9d:80"
              guest: null
              networks: [vtap]
        networks:
          description:
            - Every libvirt network, described by the definition in effect (the running one
              while it runs).
          returned: when networks are gathered and libvirt answers
          type: list
          elements: dict
          contains:
            name:
              description: Network name.
              type: str
              sample: host-bridge
            uuid:
              description: libvirt's uuid of the network.
              type: str
              sample: eefff36a-5c54-4a6b-89a3-03b245e65af1
            active:
              description: Whether it runs.
              type: bool
              sample: true
            autostart:
              description: Whether libvirtd starts it when it starts.
              type: bool
              sample: true
            persistent:
              description: Whether it is defined (false for a transient network).
              type: bool
              sample: true
            forward:
              description: Forward mode, as O(kvmnet.network.libvirt_net#module:forward) spells it (V(isolated) without C(<forward>)).
              type: str
              sample: bridge
            bridge:
              description: The host bridge (forward bridge) or libvirt's own bridge; null for macvtap and hostdev networks.
              type: str
              sample: br0
            interfaces:
              description: The device pool of C(<forward>) (empty when there is none).
              type: list
              elements: str
              sample: []
            pf:
              description: The SR-IOV physical function of the pool, or null.
              type: str
              sample: null
            addresses:
              description: The addresses of libvirt's own bridge (C(<ip>)), address/prefix.
              type: list
              elements: str
              sample: []
            method:
              description:
                - What guests on this network amount to - V(bridge) (forward bridge on a host
                  bridge), V(private) (forward private), V(direct_bridge) (forward bridge over a
                  device pool), else the forward mode (V(nat), V(route), V(open), V(isolated),
                  V(vepa), V(passthrough), V(hostdev)).
              type: str
              sample: bridge
            restart_required:
              description: Whether the network runs a definition older than its stored one.
              type: bool
              sample: false
          sample:
            - name: host-bridge
              uuid: eefff36a-5c54-4a6b-89a3-03b245e65af1
              active: true
              autostart: true
              persistent: true
              forward: bridge
              bridge: br0
              interfaces: []
              pf: null
              addresses: []
              method: bridge
              restart_required: false
        guests:
          description: Every libvirt domain with its interfaces.
          returned: when guests are gathered and libvirt answers
          type: list
          elements: dict
          contains:
            name:
              description: Domain name.
              type: str
              sample: vm-bridge
            uuid:
              description: Domain UUID.
              type: str
              sample: 371bc3ac-039a-40ab-90c9-2adf1cc6eff2
            state:
              description: As libvirt says it (C(running), C(paused), C(shut off), ...).
              type: str
              sample: running
            persistent:
              description: Whether it is defined (false for a transient guest).
              type: bool
              sample: true
            autostart:
              description: Whether libvirtd starts it when it starts.
              type: bool
              sample: false
            interfaces:
              description:
                - The interfaces of its definition in order, then any the running guest has and
                  the definition lacks.
              type: list
              elements: dict
              contains:
                mac:
                  description: MAC address, lower case.
                  type: str
                  sample: "52:54:00:01:00:01"
                type:
                  description: Interface type (V(network), V(bridge), V(direct), V(user), ...).
                  type: str
                  sample: network
                source:
                  description: The network, bridge or host device it is on (null for types without one).
                  type: str
                  sample: host-bridge
                mode:
                  description: Macvtap mode of a V(direct) interface (libvirt's default V(vepa) when none is written); null for other types.
                  type: str
                  sample: null
                model:
                  description: Device model, or null.
                  type: str
                  sample: virtio
                method:
                  description:
                    - Which of the three methods it amounts to - V(bridge) (a tap on a host
                      bridge - a forward bridge network on a bridge, or type bridge on a bridge
                      that is not a libvirt network's own), V(private) (a macvtap in private
                      mode - a forward private network, or type direct in private mode),
                      V(direct_bridge) (a macvtap in bridge mode - type direct in bridge mode,
                      or a forward bridge network over a device pool).
                    - Otherwise what it is - its network's forward mode (V(nat), V(route),
                      V(open), V(isolated), V(vepa), V(passthrough), V(hostdev)), a direct
                      interface's mode (V(vepa), V(passthrough)), the interface type
                      (V(user), V(ethernet), ...), or V(unknown) for a network that does not
                      exist.
                  type: str
                  sample: bridge
                target:
                  description: The running guest's device for it (a tap or macvtap); null when not running.
                  type: str
                  sample: vnet0
                bridge:
                  description: The bridge the running guest's tap is a port of, as the kernel says; else null.
                  type: str
                  sample: br0
                parent:
                  description: The device under the running guest's macvtap, as the kernel says; else null.
                  type: str
                  sample: null
                restart_required:
                  description:
                    - Whether the running guest uses the interface otherwise than its definition
                      says (type, source, mode, model), lacks it, or has it only until it stops.
                  type: bool
                  sample: false
          sample:
            - name: vm-bridge
              uuid: 371bc3ac-039a-40ab-90c9-2adf1cc6eff2
              state: running
              persistent: true
              autostart: false
              interfaces:
                - {mac: "52:54:00:01:00:01", type: network, source: host-bridge, mode: null, model: virtio,
                   method: bridge, target: vnet0, bridge: br0, parent: null, restart_required: false}
            - name: vm-direct
              uuid: 07ce43df-a30d-4ee9-9f9f-9ffeda258553
              state: running
              persistent: true
              autostart: false
              interfaces:
                - {mac: "52:54:00:03:00:01", type: direct, source: ens33, mode: bridge, model: virtio,
                   method: direct_bridge, target: macvtap2, bridge: null, parent: ens33, restart_required: false}
'''
