#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmnet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
#
# Documentation only. The module is the static binary files/bin/<arch>/libvirt_net of this collection
# (built from modules/libvirt_net in the source tree); the action plugin plugins/action/libvirt_net.py sends it
# to the host and runs it there in one ssh round trip. The managed host needs no Python.

from __future__ import annotations

DOCUMENTATION = r'''
module: libvirt_net
short_description: Manage a libvirt network in any forward mode, compared semantically
version_added: 0.1.0
author:
  - kvmnet contributors (!UNKNOWN)
description:
  - Defines, redefines, starts, stops, autostarts and removes one libvirt network, the way
    C(virsh net-define), C(net-start), C(net-autostart), C(net-destroy) and C(net-undefine)
    do by hand.
  - The structured options (O(forward), O(bridge), O(interfaces), O(pf), O(ip)) or O(xml)
    describe the B(whole) desired definition. It is compared semantically with the one
    libvirt stores, after normalising what libvirt adds or rewrites by itself (the uuid,
    the MAC address and bridge name it generates for a network with its own bridge,
    C(stp='on') and C(delay='0'), C(connections) counters, the default NAT port range, the
    C(<forward dev='X'>) short form, C(netmask) versus C(prefix), attribute and element
    order). Anything else the current definition has and the desired one lacks is a
    difference, so an element is removed by leaving it out.
  - The network is redefined only when the definition differs, keeping its uuid (libvirt
    refuses a redefinition without it) and, for a network with its own bridge, the bridge
    name and MAC address libvirt picked, so guests do not move to a new bridge.
  - A running network keeps its previous definition until it is restarted. The module then
    returns RV(restart_required=true) with a warning, or with O(restart=true) stops and starts
    it. A later run notices a change still pending by comparing the live and the inactive
    definitions.
  - The state of the network (O(state)) and O(autostart) are handled in the same run, in any
    combination.
  - A transient network (C(virsh net-create)) is made persistent by O(state=present),
    O(state=active) or O(state=inactive), and removed by O(state=absent).
  - The current definition and runtime state are read in one C(virsh) process; an
    unchanged run starts no other C(virsh).
  - Warns when the definition names a host bridge or interface the host does not have
    (libvirt accepts it and even starts the network; guests then fail to start). The
    check reads C(/sys/class/net) and starts no process.
  - A static binary module; the managed host needs C(virsh) and a reachable libvirtd.
options:
  name:
    description:
      - Name of the libvirt network.
    type: str
    required: true
  forward:
    description:
      - The forward mode. V(isolated) is a network without C(<forward>) (libvirt's own
        bridge, no connection outside).
      - V(nat), V(route), V(open) and V(isolated) run libvirt's own bridge; O(bridge) names
        it (libvirt picks C(virbrN) when omitted) and O(ip) gives its address and DHCP
        range. V(nat), V(route) and V(open) need O(ip).
      - V(bridge) puts guests on an existing host bridge (O(bridge)) or, with O(interfaces),
        on macvtap devices in bridge mode over those host devices. Exactly one of the two.
      - V(private), V(vepa) and V(passthrough) put guests on macvtap devices over a pool of
        host devices (O(interfaces)); V(passthrough) may use the virtual functions of an
        SR-IOV physical function (O(pf)) instead.
      - V(hostdev) hands out the virtual functions of the SR-IOV physical function O(pf) by
        PCI passthrough (C(managed='yes')).
      - V(passthru) is accepted for V(passthrough).
      - Required to define a network that does not exist yet (or give O(xml)). Omitted
        together with O(xml), the definition of an existing network is left as it is and
        only its state and autostart are managed.
    type: str
    choices: [nat, route, open, bridge, private, vepa, passthrough, hostdev, isolated]
  bridge:
    description:
      - With O(forward=bridge), the existing host bridge guests are put on (for example the
        NetworkManager bridge C(br0)).
      - With O(forward=nat), V(route), V(open) or V(isolated), the name of libvirt's own
        bridge for this network. When omitted, libvirt picks one and it is kept on later
        redefinitions.
      - Not allowed with the other forward modes. Requires O(forward).
    type: str
  interfaces:
    description:
      - The pool of host devices for O(forward=private), V(vepa), V(passthrough), or
        V(bridge) over macvtap. The order is kept (libvirt uses the first free device).
      - An explicit empty list is an error (a pool needs a device). Requires O(forward).
    type: list
    elements: str
  pf:
    description:
      - An SR-IOV physical function whose virtual functions form the pool, for
        O(forward=hostdev) (required there) or O(forward=passthrough). Requires O(forward).
    type: str
  ip:
    description:
      - The address of libvirt's own bridge and optionally a DHCP range, for O(forward=nat),
        V(route), V(open) and V(isolated). IPv4 or IPv6.
      - Requires O(forward).
    type: dict
    suboptions:
      address:
        description:
          - The bridge's address, for example V(192.168.150.1), or with its prefix length,
            V(192.168.150.1/24).
        type: str
        required: true
      prefix:
        description:
          - Prefix length of the network (V(24) for 255.255.255.0). Required unless
            O(ip.address) carries it.
        type: int
      dhcp:
        description:
          - A DHCP range served by libvirt's dnsmasq; both ends inside the network.
        type: dict
        suboptions:
          start:
            description: First address of the range.
            type: str
            required: true
          end:
            description: Last address of the range.
            type: str
            required: true
  xml:
    description:
      - The whole network definition as libvirt XML, instead of the structured options
        (mutually exclusive with O(forward), O(bridge), O(interfaces), O(pf) and O(ip)).
      - Its C(<name>) must be O(name) (it is added when missing). A C(<uuid>) may be left out;
        one that differs from the existing network's is an error.
      - Compared semantically like the structured options. An element or value libvirt
        ignores or rewrites in a way kvmnet does not know makes the verification after the
        change fail with the difference named, rather than a task that changes on every run;
        the network is then put back as it was (its previous definition and state, or no
        network), and the task says so with C(changed=false).
    type: str
  state:
    description:
      - V(active) - defined and running (started if stopped).
      - V(present) - defined; a running network stays running, a stopped one stays stopped.
      - V(inactive) - defined and stopped (a missing network is defined and left stopped).
      - V(absent) - stopped and undefined.
    type: str
    choices: [present, active, inactive, absent]
    default: active
  autostart:
    description:
      - Whether libvirtd starts the network when it starts. Omitted, it is left as it is (a
        newly defined network does not autostart).
      - V(true) does not fit O(state=absent).
    type: bool
  restart:
    description:
      - When the definition of a running network changed (in this run or pending from an
        earlier one), stop and start it so the running network takes the new definition.
        Guests on the network lose their connection for that moment.
      - Otherwise the module returns RV(restart_required=true) and a warning.
    type: bool
    default: false
  uri:
    description:
      - The libvirt connection URI.
    type: str
    default: qemu:///system
attributes:
  check_mode:
    support: full
    description:
      - Nothing is defined, started, stopped or written; RV(commands) lists the commands a
        real run would run and RV(network) the state it would leave.
  diff_mode:
    support: full
    description:
      - Two entries - the inactive XML before and after (empty when the network is created
        or removed), and the state flags C(active), C(autostart), C(persistent) before and
        after.
  platform:
    support: full
    platforms: posix
    description:
      - Linux KVM hosts with libvirt 6 or later (EL8+, Debian 11+, Ubuntu 20.04+). Tested with
        libvirt 7.0 (Debian 11), 9.0 (Debian 12) and 11.3 (Debian 13); expected to work but not
        tested here - libvirt 6.0 (Ubuntu 20.04), 8.0 (EL8, Ubuntu 22.04) and 10.0 (Ubuntu 24.04).
notes:
  - Run as root (C(become=true)); no Python is needed on the host (C(gather_facts=false)
    works).
  - Modules of this collection take turns through one lock file, C(/run/lock/kvmnet.lock);
    check mode takes no lock.
  - libvirt accepts a network over a bridge or device that does not exist (and starts it);
    the module warns, because guests fail later. In check mode a bridge an earlier task
    would create is reported the same way.
  - O(forward=hostdev) and SR-IOV O(pf) pools can be defined on any host, but only started
    where the physical function has virtual functions.
seealso:
  - module: kvmnet.network.nm_bridge
    description: The host bridge a O(forward=bridge) network puts guests on.
  - module: kvmnet.network.macvtap_link
    description: A persistent macvtap link a network's pool can name.
  - module: kvmnet.network.domain_iface
    description: Point a guest's interface at the network.
  - name: libvirt network XML format
    description: Every element a network definition may hold.
    link: https://libvirt.org/formatnetwork.html
requirements:
  - virsh (libvirt-clients) and a running libvirtd, libvirt >= 6
'''

EXAMPLES = r'''
# The tutorial's method 1: a network on the host bridge br0
# (virsh net-define host-bridge.xml; virsh net-autostart host-bridge).
- name: libvirt network host-bridge on br0
  kvmnet.network.libvirt_net:
    name: host-bridge
    forward: bridge
    bridge: br0
    autostart: true

# The tutorial's method 2: guests on macvtap devices over macvtap0's NIC.
- name: libvirt network vtap over macvtap0
  kvmnet.network.libvirt_net:
    name: vtap
    forward: private
    interfaces: [macvtap0]
    autostart: true

# The same networks as the tutorial's XML files.
- name: host-bridge from its XML
  kvmnet.network.libvirt_net:
    name: host-bridge
    xml: |
      <network>
        <name>host-bridge</name>
        <forward mode="bridge"/>
        <bridge name="br0"/>
      </network>
    autostart: true

- name: vtap from its XML
  kvmnet.network.libvirt_net:
    name: vtap
    xml: "{{ lookup('ansible.builtin.file', 'vtap.xml') }}"

# Move a running network to another bridge and apply it now (guests reconnect).
- name: host-bridge on br1, restarted
  kvmnet.network.libvirt_net:
    name: host-bridge
    forward: bridge
    bridge: br1
    restart: true

- name: A NAT network with DHCP
  kvmnet.network.libvirt_net:
    name: lab-nat
    forward: nat
    ip:
      address: 192.168.150.1
      prefix: 24
      dhcp: {start: 192.168.150.10, end: 192.168.150.99}
    autostart: true

- name: Macvtap pool in VEPA mode over two NICs
  kvmnet.network.libvirt_net:
    name: vepa-pool
    forward: vepa
    interfaces: [ens32, ens33]

- name: SR-IOV virtual functions of enp1s0 by PCI passthrough, defined but not started
  kvmnet.network.libvirt_net:
    name: sriov
    forward: hostdev
    pf: enp1s0
    state: present

- name: Stop libvirt's default network and keep it from starting at boot
  kvmnet.network.libvirt_net:
    name: default
    state: inactive
    autostart: false

- name: Remove a network (a transient one too)
  kvmnet.network.libvirt_net:
    name: lab-nat
    state: absent

- name: Restart the network if a change is still pending
  kvmnet.network.libvirt_net:
    name: host-bridge
    restart: true
'''

RETURN = r'''
msg:
  description: One sentence saying what was done (or would be, in check mode).
  returned: always
  type: str
  sample: "Redefine network host-bridge (bridge.name changed); the running network keeps its previous definition until restarted"
changed:
  description: Whether anything was changed (or would be, in check mode).
  returned: always
  type: bool
  sample: true
commands:
  description:
    - The argv of every command that changed something, in order (in check mode, that
      would have). C(net-define) reads the definition from stdin; it is in RV(xml) and the
      diff.
  returned: always
  type: list
  elements: list
  sample: [["virsh", "-c", "qemu:///system", "net-define", "--file", "/dev/stdin"],
           ["virsh", "-c", "qemu:///system", "net-destroy", "--network", "host-bridge"],
           ["virsh", "-c", "qemu:///system", "net-start", "--network", "host-bridge"]]
restart_required:
  description:
    - True when the network runs a definition older than its inactive one (changed in this
      run without O(restart), or pending from an earlier run). Always false after
      O(restart=true) and for a stopped network.
  returned: unless O(state=absent)
  type: bool
  sample: false
diff:
  description:
    - With C(--diff), when something changes. The first entry holds the inactive XML before
      and after, the second the state flags.
  returned: when diff mode is on and something changed
  type: list
  elements: dict
  sample:
    - before_header: libvirt network host-bridge (inactive XML)
      after_header: libvirt network host-bridge (inactive XML)
      before: "<network>\n  <name>host-bridge</name>\n  <uuid>\
        c1da1a30-d80d-48e6-b500-e203490470a7</uuid>\n  <forward mode='bridge'/>\n  <bridge name='br0'/>\n</network>\n"
      after: "<network>\n  <name>host-bridge</name>\n  <uuid>\
        c1da1a30-d80d-48e6-b500-e203490470a7</uuid>\n  <forward mode='bridge'/>\n  <bridge name='br1'/>\n</network>\n"
    - before_header: libvirt network host-bridge (state)
      after_header: libvirt network host-bridge (state)
      before: {active: true, autostart: true, persistent: true}
      after: {active: true, autostart: true, persistent: true}
network:
  description:
    - The network as it is after the run (in check mode, as it would be). Describes its
      inactive definition; a running network with RV(restart_required) still runs the
      previous one.
    - After O(state=absent) every flag is false and the definition keys are null or empty.
  returned: always
  type: dict
  contains:
    name:
      description: Network name.
      type: str
      sample: host-bridge
    uuid:
      description: libvirt's uuid of the network (null for a network check mode would create).
      type: str
      sample: c1da1a30-d80d-48e6-b500-e203490470a7
    active:
      description: Whether the network is running.
      type: bool
      sample: true
    autostart:
      description: Whether libvirtd starts it at its own start.
      type: bool
      sample: true
    persistent:
      description: Whether the network is defined (not only transient).
      type: bool
      sample: true
    forward:
      description: The forward mode, spelled as O(forward) (V(isolated) without C(<forward>)).
      type: str
      sample: bridge
    bridge:
      description:
        - The host bridge (forward bridge) or libvirt's own bridge, including the name
          libvirt picked. Null for macvtap and hostdev networks.
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
  sample:
    name: host-bridge
    uuid: c1da1a30-d80d-48e6-b500-e203490470a7
    active: true
    autostart: true
    persistent: true
    forward: bridge
    bridge: br0
    interfaces: []
    pf: null
xml:
  description:
    - The resulting inactive definition - libvirt's own text after a change or when nothing
      is redefined; in check mode with a definition to write, the one that would be handed to
      C(net-define).
    - Null after O(state=absent).
    - After a failed verification, the definition the network has again (null when it was
      removed again); what libvirt had stored is in RV(stored_xml).
  returned: always
  type: str
  sample: "<network>\n  <name>host-bridge</name>\n  <uuid>\
    c1da1a30-d80d-48e6-b500-e203490470a7</uuid>\n  <forward mode='bridge'/>\n  <bridge name='br0'/>\n</network>\n"
stored_xml:
  description:
    - The definition libvirt stored from the task's, before verification failed and the
      previous one was put back; against O(xml) it shows what libvirt dropped or rewrote.
  returned: when verification failed
  type: str
'''
