#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmnet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
#
# Documentation only. The module is the static binary files/bin/<arch>/domain_iface of this collection
# (built from modules/domain_iface in the source tree); the action plugin plugins/action/domain_iface.py sends it
# to the host and runs it there in one ssh round trip. The managed host needs no Python.

from __future__ import annotations

DOCUMENTATION = r'''
module: domain_iface
short_description: Point one interface of an existing libvirt guest at a network, a bridge or a host NIC
version_added: 0.1.0
author:
  - kvmnet contributors (!UNKNOWN)
description:
  - Edits one C(<interface>) of an existing libvirt domain, chosen by its MAC address, so that it
    uses a libvirt network (C(type=network)), a host bridge (C(type=bridge)) or a host NIC through
    a macvtap device (C(type=direct)). Adds an interface with a given MAC, or removes one.
  - The rest of the domain is never rewritten. In the selected interface, its MAC, PCI address,
    model, driver, boot order, ROM, MTU, link state, filter reference and every other child stay
    as they are; when the source changes, only what belongs to the old source goes (the old
    C(<source>) with its C(portgroup) and runtime C(portid), and C(<virtualport>)).
  - The persistent definition (C(virsh dumpxml --inactive)) and, for a running guest, the live
    one are read in one virsh process. Nothing differs, nothing is written.
  - The persistent definition is changed first, then the running guest, as two separate steps
    (libvirt treats C(--live --config) as one call, so a refused live part would also drop the
    config part).
  - libvirt changes a running guest's interface only between two bridge-backed sources (a
    bridge, or a network in nat, route, open or isolated mode, or a network in bridge mode over
    a host bridge). It refuses changes to or from C(direct), between macvtap-backed networks, and
    of the model. With O(live=auto) such a change goes into the persistent definition only, with
    a warning and RV(restart_required=true); with O(live=true) the task fails before anything
    changes.
  - The module is a static binary; the managed host needs C(virsh) (and C(ip) for bridge and
    direct sources), no Python.
options:
  domain:
    description:
      - Name of the libvirt domain (guest). It must be defined; an unknown name fails and lists
        the defined ones.
    type: str
    required: true
    aliases: [name, guest]
  mac:
    description:
      - MAC address of the interface to manage; any case, C(:) or C(-) separated.
      - May be left out with O(state=present) when the guest has exactly one interface. With
        several interfaces and no O(mac) the task fails and lists each interface's MAC and
        source.
      - Required to add an interface (the module never invents a MAC) and to remove one.
      - With O(state=present), a MAC no interface has adds an interface; O(type) and O(source)
        are then required.
    type: str
    aliases: [mac_address]
  type:
    description:
      - What the interface uses. Omitted keeps the current type.
      - C(network) a libvirt network, C(bridge) a host bridge (tap device on it), C(direct) a
        host NIC through a macvtap device.
    type: str
    choices: [network, bridge, direct]
  source:
    description:
      - Network name (O(type=network)), bridge name (O(type=bridge)) or host NIC
        (O(type=direct)). Required when the type changes and when adding an interface.
      - A network must be defined (the message lists the defined ones); a bridge must exist
        and be a bridge; a host NIC must exist. In check mode a missing network or bridge (which
        an earlier task of the play may create) is a warning.
    type: str
  mode:
    description:
      - Macvtap mode of a C(direct) interface. Required with O(type=direct); an error with any
        other type. Omitted with O(type) omitted keeps the current mode.
      - C(passthru) is accepted for C(passthrough).
    type: str
    choices: [bridge, private, vepa, passthrough]
  model:
    description:
      - Device model, for example C(virtio), C(e1000e), C(rtl8139). Omitted keeps the current
        model; a new interface without it gets libvirt's default (C(rtl8139) on x86 pc machines).
      - libvirt cannot change the model of a running guest's interface.
    type: str
  live:
    description:
      - What happens to a running (or paused) guest.
      - C(auto) changes the running guest too when libvirt can; when it cannot, only the
        persistent definition changes, with a warning and RV(restart_required=true).
      - C(true) (C(yes)) the running guest must change too; when libvirt cannot do it, the task
        fails before changing anything. A shut-off guest just gets the definition.
      - C(false) (C(no)) only the persistent definition changes; RV(restart_required) tells
        whether the running guest differs.
    type: raw
    default: auto
  state:
    description:
      - C(present) the interface exists as described (changed or added).
      - C(absent) the interface with O(mac) is removed from the definition and, unless
        O(live=false), from the running guest. Only O(domain) and O(mac) matter then.
      - A running guest releases a removed interface only when its OS acknowledges the unplug;
        until then (or until it restarts) the result says RV(restart_required=true).
    type: str
    choices: [present, absent]
    default: present
  uri:
    description:
      - libvirt connection URI. A libvirtd that cannot be reached fails the task clearly.
    type: str
    default: qemu:///system
attributes:
  check_mode:
    support: full
    description: Nothing is written (no definition, no file); RV(commands) lists the virsh calls
      a real run would make and the diff shows the planned C(<interface>) element.
  diff_mode:
    support: full
    description: The selected C(<interface>) element before and after, for the persistent
      definition and, when the running guest changes too, for the live one. Adding has an empty
      before, removing an empty after.
  platform:
    support: full
    platforms: posix
    description:
      - Linux KVM hosts with libvirt 6 or later (EL8+, Debian 11+, Ubuntu 20.04+).
      - Tested with libvirt 7.0 (Debian 11), 9.0 (Debian 12) and 11.3 (Debian 13); expected to work
        but not tested here - libvirt 6.0 (Ubuntu 20.04), 8.0 (EL8, Ubuntu 22.04) and 10.0 (Ubuntu 24.04).
notes:
  - Run it as root (C(become=true)).
  - Interfaces are identified by MAC. libvirt accepts duplicate MACs; this module manages the
    first interface with the given MAC.
  - Hot-plugging needs C(<features><acpi/></features>) in the guest. A new interface is
    hot-plugged at the PCI address libvirt gave it in the persistent definition, so the guest
    sees the same device after a restart.
  - A rerun while a change is still pending for the running guest reports C(changed=false) and
    RV(restart_required=true).
requirements:
  - virsh (libvirt-clients) on the managed host
  - ip (iproute2) on the managed host, for bridge and direct sources
seealso:
  - module: kvmnet.network.libvirt_net
  - module: kvmnet.network.nm_bridge
  - module: kvmnet.network.macvtap_link
  - name: libvirt domain XML, network interfaces
    description: The C(<interface>) element and its types.
    link: https://libvirt.org/formatdomain.html#network-interfaces
'''

EXAMPLES = r'''
# Method 1: the guest on the LAN through the host bridge br0, by way of the libvirt network
# host-bridge (<forward mode='bridge'/><bridge name='br0'/>). The tutorial's
# <source network='default'/> -> <source network='host-bridge'/>. A move between two
# bridge-backed sources also happens in the running guest.
- name: Guest vm1 on the host bridge network
  kvmnet.network.domain_iface:
    domain: vm1
    type: network
    source: host-bridge
  become: true

# Method 2: the guest on the libvirt network vtap, a private-mode macvtap network over the
# persistent link macvtap0 (<forward mode='private'><interface dev='macvtap0'/>).
# libvirt cannot move a running guest onto a macvtap: the definition changes now and the
# result says restart_required.
- name: Guest vm1 on the macvtap network
  kvmnet.network.domain_iface:
    domain: vm1
    mac: 52:54:00:6b:3c:58
    type: network
    source: vtap
  register: vm1_iface
  become: true

- name: Restart vm1 when its interface change is still pending
  ansible.builtin.debug:
    msg: "vm1 takes the new interface at its next restart"
  when: vm1_iface.restart_required

# Method 3: the tutorial's <interface type='direct'><source dev='ens32' mode='bridge'/>:
# a macvtap per guest directly on the NIC, no libvirt network.
- name: Guest vm1 directly on ens32 (macvtap, bridge mode)
  kvmnet.network.domain_iface:
    domain: vm1
    mac: 52:54:00:6b:3c:58
    type: direct
    source: ens32
    mode: bridge
    model: virtio
  become: true

- name: Move vm2 to bridge br0 in the running guest too, or fail without changing anything
  kvmnet.network.domain_iface:
    domain: vm2
    type: bridge
    source: br0
    live: true
  become: true

- name: Add a second interface to vm1 (shut off, or hot-plugged when running)
  kvmnet.network.domain_iface:
    domain: vm1
    mac: 52:54:00:6b:3c:59
    type: network
    source: default
    model: virtio
  become: true

- name: Remove that interface again
  kvmnet.network.domain_iface:
    domain: vm1
    mac: 52:54:00:6b:3c:59
    state: absent
  become: true
'''

RETURN = r'''
changed:
  description: Whether a definition was changed (or would be, in check mode).
  returned: always
  type: bool
  sample: true
msg:
  description: What was done, in one sentence.
  returned: always
  type: str
  sample: Point interface 52:54:00:6b:3c:58 of domain vm1 from network default to network host-bridge
    in the persistent definition; point interface 52:54:00:6b:3c:58 of domain vm1 from network
    default to network host-bridge in the running guest
commands:
  description:
    - The argv of every command that changed something (or would have, in check mode).
    - C(update-device) and C(attach-device) read the C(<interface>) XML from stdin (shown in the
      diff).
  returned: always
  type: list
  elements: list
  sample:
    - [virsh, -c, "qemu:///system", update-device, vm1, /dev/stdin, --config]
    - [virsh, -c, "qemu:///system", update-device, vm1, /dev/stdin, --live]
diff:
  description:
    - The C(<interface>) element before and after, with headers naming the domain, the MAC and
      which definition (persistent or live). One entry is a dict, several a list.
  returned: changed and diff mode
  type: raw
  sample:
    before_header: domain vm1 interface 52:54:00:6b:3c:58 (persistent)
    after_header: domain vm1 interface 52:54:00:6b:3c:58 (persistent)
    before: "<interface type='network'>\n  <mac address='52:54:00:6b:3c:58'/>\n  <source network='default'/>\n  <model type='virtio'/>\n</interface>\n"
    after: "<interface type='network'>\n  <mac address='52:54:00:6b:3c:58'/>\n  <source network='host-bridge'/>\n  <model type='virtio'/>\n</interface>\n"
interface:
  description:
    - The interface as the persistent definition has it after the task.
    - With O(state=absent) only C(mac) and C(state=absent).
  returned: success
  type: dict
  contains:
    mac:
      description: MAC address, lower case.
      type: str
      sample: 52:54:00:6b:3c:58
    type:
      description: network, bridge, direct (or another libvirt type the module left alone).
      type: str
      sample: direct
    source:
      description: Network name, bridge name or host device.
      type: str
      sample: ens32
    mode:
      description: Macvtap mode of a direct interface (libvirt's default vepa when none is
        written); null for other types.
      type: str
      sample: bridge
    model:
      description: Device model; null when the definition has none.
      type: str
      sample: virtio
    target:
      description: The host device of the running guest's interface (tap or macvtap); only
        while the guest runs.
      type: str
      returned: when the guest runs
      sample: macvtap0
    state:
      description: present or absent.
      type: str
      sample: present
restart_required:
  description:
    - True when the running guest does not have what the persistent definition now says (a
      change libvirt cannot make live, O(live=false), or an unplug the guest has not completed).
      It stays true on reruns until the guest restarts. Always false for a shut-off guest.
  returned: success
  type: bool
  sample: false
warnings:
  description: Why a change waits for a restart; a network or bridge assumed from an earlier
    task in check mode.
  returned: when there are any
  type: list
  elements: str
'''
