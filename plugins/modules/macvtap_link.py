#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmnet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
#
# Documentation only. The module is the static binary files/bin/<arch>/macvtap_link of this collection
# (built from modules/macvtap_link in the source tree); the action plugin plugins/action/macvtap_link.py sends it
# to the host and runs it there in one ssh round trip. The managed host needs no Python.

from __future__ import annotations

DOCUMENTATION = r'''
module: macvtap_link
short_description: A macvtap link on a parent NIC, at runtime or persistent across reboots
version_added: 0.1.0
author:
  - kvmnet contributors (!UNKNOWN)
description:
  - Declares a macvtap link (the tutorial's method 2,
    C(ip link add link ens32 name macvtap0 type macvtap mode private; ip link set macvtap0 up)) and makes the
    host match it, idempotently.
  - Without I(persistent) the link is made with C(ip link) and is gone after a reboot; NetworkManager profiles
    are neither read nor touched. With I(persistent=true) a NetworkManager profile (type C(macvlan),
    C(tap yes), IPv4 and IPv6 disabled as NetworkManager requires for it, autoconnect on) holds the link, so it
    comes back after a reboot or a NetworkManager restart. With I(persistent=false) the link's profiles are
    removed and the link is kept as a runtime link.
  - Reads the host with one C(ip -j -d link show). With I(persistent=true) on a link NetworkManager manages,
    the link's profiles are read over NetworkManager's D-Bus API (its device, and the saved macvlan keyfiles
    as an index), so a run that changes nothing starts no C(nmcli); otherwise (a change, I(persistent=false),
    I(state=absent)) one C(nmcli) list call, the macvlan profiles' keyfiles read directly, C(nmcli con show)
    only for a profile another settings plugin stores. When nothing differs no command that changes anything
    runs.
  - When only the mode differs, it is changed in place (C(ip link set ... type macvtap mode ...)); the kernel
    refuses to switch to or from passthru in place, so the link is then deleted and made again, as it is when
    the parent differs. A recreated link, and one NetworkManager makes, keeps the MAC address it had (the
    kernel and NetworkManager would otherwise pick a new random one each time) unless I(mac) says otherwise;
    a new link without I(mac) gets a random, locally administered unicast address chosen by the module, and a
    persistent profile pins it (C(802-3-ethernet.cloned-mac-address)).
  - An existing runtime link with the requested settings is taken over by a new profile as it is (same
    interface index, same address), and the next run reports no change.
  - Refuses, before changing anything and saying why, a parent that does not exist, a parent that is a port
    of a bridge (or another controller; the kernel answers EBUSY, the tutorial's methods 1 and 2 are
    alternatives on one NIC), a parent that is itself a macvlan or macvtap, passthrough on a parent that
    already carries other macvlan/macvtap links, another link on a parent held by a passthrough link, and a
    link of that name that is not a macvtap (a bridge, a NIC, a macvlan), which is never deleted.
  - After a change, re-reads the kernel (and the profile) and fails if what was asked is not in effect.
options:
  name:
    description:
      - The macvtap link's interface name, at most 15 bytes, without C(/), C(:) or whitespace.
    type: str
    required: true
  link:
    description:
      - The parent NIC the macvtap sits on. Required with I(state=present).
      - It must exist (in check mode too) and must not be a bridge port.
    type: str
    aliases:
      - parent
  mode:
    description:
      - The macvtap mode. Required with I(state=present); there is no silent default (the kernel's would be
        C(vepa)).
      - C(passthru), the kernel's and NetworkManager's spelling, is accepted for C(passthrough).
      - C(passthrough) needs the parent to itself, and the link then takes the parent's MAC address.
    type: str
    choices:
      - bridge
      - private
      - vepa
      - passthrough
  mac:
    description:
      - The link's MAC address (any case, C(:) or C(-) separated), unicast.
      - Omitted, an existing link keeps its address; a new one gets a random locally administered address.
      - Not with I(mode=passthrough), where the link takes its parent's address (setting one would change the
        parent NIC's address).
    type: str
    aliases:
      - mac_address
  persistent:
    description:
      - C(true), a NetworkManager profile holds the link so that it comes back after a reboot; an existing
        macvlan profile for I(name) is adopted (and corrected), further ones for the same interface are
        removed.
      - C(false), no profile; the macvlan profiles for I(name) are removed and the link stays as a runtime link
        (if NetworkManager removes the link together with a profile it made, the link is made again with the
        same settings and address).
      - Omitted, the link is handled with C(ip link) only and profiles are left alone.
      - C(true) and C(false) need a running NetworkManager.
    type: bool
  conn_name:
    description:
      - Name of the NetworkManager profile, with I(persistent=true) only. Used when the profile is created
        (default C(macvlan-<name>)); given for an adopted profile, renames it, omitted, the adopted profile keeps
        its name.
    type: str
  up:
    description:
      - Whether the link is administratively up.
      - C(false) does not fit I(persistent=true) (NetworkManager brings the link up whenever it activates the
        profile) and is refused.
    type: bool
    default: true
  state:
    description:
      - C(present), the link exists as described.
      - C(absent), the link and the NetworkManager macvlan profiles for I(name) are removed (when
        NetworkManager is not running and I(persistent) is not given, the link alone). Only I(name) is needed;
        other options are ignored.
    type: str
    choices:
      - present
      - absent
    default: present
attributes:
  check_mode:
    support: full
    description: Nothing is written (no link, profile or lock file); C(commands) lists what would run.
  diff_mode:
    support: full
    description:
      - Shows the link before and after as mappings (C(kind), C(parent), C(mode), C(mac), C(up), and
        C(persistent), C(conn_name) when NetworkManager was read). Creation has an empty I(before), removal an
        empty I(after).
  platform:
    support: full
    platforms: posix
    description:
      - Linux KVM hosts (EL8 and later, Debian 11 and later, Ubuntu 20.04 and later), run as root.
      - Tested with iproute2 5.10, 6.1 and 6.15 and, for O(persistent), NetworkManager 1.30, 1.42 and 1.52
        (Debian 11, 12 and 13). Expected to work but not tested here - NetworkManager 1.22 (Ubuntu 20.04),
        1.36 (Ubuntu 22.04), 1.40 (EL8) and 1.46 (Ubuntu 24.04).
notes:
  - The module is a static binary; the managed host needs no Python.
  - The macvtap's character device is C(/dev/tap<ifindex>); it changes whenever the link is made again.
  - With a macvtap in C(private), C(vepa) or C(passthrough) mode the host cannot reach guests on the same NIC
    through it; C(bridge) mode lets macvtaps on one parent talk to each other.
requirements:
  - iproute2 with JSON output (C(ip -j))
  - NetworkManager 1.22 or later, nmcli and its D-Bus API, for I(persistent)
seealso:
  - module: kvmnet.network.nm_bridge
    description: The tutorial's method 1, a bridge, an alternative to macvtap on one NIC.
  - module: kvmnet.network.libvirt_net
    description: A libvirt network in macvtap (direct) mode over a NIC.
  - module: kvmnet.network.domain_iface
    description: Give a guest an interface on the network.
'''

EXAMPLES = r'''
# The tutorial's method 2, as it was: a runtime link, gone after a reboot.
#   ip link add link ens32 name macvtap0 type macvtap mode private
#   ip link set macvtap0 up
- name: Macvtap link on ens32 (runtime only)
  kvmnet.network.macvtap_link:
    name: macvtap0
    link: ens32
    mode: private
  become: true

# The same, persistent: a NetworkManager profile brings it back after a reboot.
- name: Macvtap link on ens32 that survives reboots
  kvmnet.network.macvtap_link:
    name: macvtap0
    link: ens32
    mode: private
    mac: 52:54:00:12:34:56
    persistent: true
  become: true
  register: tap

- name: Show the link's character device
  ansible.builtin.debug:
    msg: "{{ tap.link.name }} is {{ tap.link.tap_device }} ({{ tap.link.mac }})"

# Bridge mode with a named profile; the profile is called tap-uplink.
- name: Macvtap in bridge mode, profile tap-uplink
  kvmnet.network.macvtap_link:
    name: macvtap1
    parent: ens33
    mode: bridge
    persistent: true
    conn_name: tap-uplink
  become: true

# Keep the link but drop its NetworkManager profile.
- name: Macvtap link without a profile
  kvmnet.network.macvtap_link:
    name: macvtap0
    link: ens32
    mode: private
    persistent: false
  become: true

- name: Remove the link and its profile
  kvmnet.network.macvtap_link:
    name: macvtap0
    state: absent
  become: true
'''

RETURN = r'''
msg:
  description: One sentence saying what was done (or would be done in check mode).
  returned: always
  type: str
  sample: Create macvtap macvtap0 on ens32 (mode private); bring macvtap0 up
changed:
  description: Whether anything was changed (would be, in check mode).
  returned: always
  type: bool
  sample: true
commands:
  description: The argv of every command that changed something (in check mode, that would have).
  returned: always
  type: list
  elements: list
  sample:
    - [ip, link, add, link, ens32, name, macvtap0, address, "52:54:00:12:34:56", type, macvtap, mode, private]
    - [ip, link, set, dev, macvtap0, up]
diff:
  description: The link before and after (diff mode).
  returned: when diff mode is on
  type: dict
  sample:
    before_header: macvtap link macvtap0
    after_header: macvtap link macvtap0
    before: {kind: macvtap, parent: ens32, mode: private, mac: "52:54:00:12:34:56", up: true}
    after: {kind: macvtap, parent: ens32, mode: bridge, mac: "52:54:00:12:34:56", up: true}
link:
  description:
    - The link as it is after the run (in check mode, as it would be); C(null) with I(state=absent).
    - I(ifindex) and I(tap_device) are C(null) in check mode for a link that would be (re)made.
  returned: always
  type: dict
  contains:
    name:
      description: Interface name.
      type: str
      sample: macvtap0
    ifindex:
      description: Kernel interface index.
      type: int
      sample: 7
    mac:
      description: MAC address, lower case.
      type: str
      sample: "52:54:00:12:34:56"
    mode:
      description: Macvtap mode (C(passthrough) for the kernel's C(passthru)).
      type: str
      sample: private
    parent:
      description: The parent NIC.
      type: str
      sample: ens32
    up:
      description: Whether the link is administratively up.
      type: bool
      sample: true
    tap_device:
      description: The link's character device, C(/dev/tap<ifindex>).
      type: str
      sample: /dev/tap7
    persistent:
      description: Whether a NetworkManager profile holds the link.
      type: bool
      returned: when I(persistent) is given
      sample: true
    conn_name:
      description: Name of the NetworkManager profile.
      type: str
      returned: when I(persistent) is given
      sample: macvlan-macvtap0
    conn_uuid:
      description:
        - UUID of the NetworkManager profile. NetworkManager chooses it when it makes the profile,
          so it is C(null) in check mode for a profile that would be created.
      type: str
      returned: when I(persistent) is given
      sample: 5b0c4f3e-7a51-4d2e-9a39-0c6f1a2b3c4d
'''
