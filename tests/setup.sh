#!/usr/bin/env bash
# Install everything the builds and tests need on a fresh Debian 12 machine (as root):
# Debian packages for the lab (NetworkManager, libvirt, QEMU, sshd), the musl target for
# static binaries (x86_64 and aarch64), a virtualenv (.venv) with the pinned Ansible tools, and
# one of its own for galaxy-importer (.venv-importer: it pins its own ansible-lint and flake8).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(network-manager dbus iproute2 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
      libvirt-daemon-config-network qemu-system-x86 dnsmasq-base iptables openssh-server
      openssh-client python3 python3-venv python3-libvirt python3-lxml musl-tools file make
      util-linux procps sudo qemu-user-static)
# sudo: the action-plugin tests become root through it inside a lab host (whose /usr is ours);
# qemu-user-static: the aarch64 binaries run under qemu-aarch64-static in the tests.
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # Nothing may start services on this machine: the lab starts its own daemons.
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if command -v rustup >/dev/null 2>&1; then
  for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  done
  rustup component list --installed | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
fi

VENV=.venv
REQ=tests/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then
  /usr/bin/python3 -m venv "$VENV"
fi
stamp="$VENV/.req-$(sha256sum "$REQ" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  touch "$stamp"
fi
IVENV=.venv-importer
IREQ=tests/requirements-importer.txt
if [ ! -x "$IVENV/bin/python" ]; then
  /usr/bin/python3 -m venv "$IVENV"
fi
istamp="$IVENV/.req-$(sha256sum "$IREQ" | cut -c1-16)"
if [ ! -e "$istamp" ]; then
  "$IVENV/bin/pip" install -q --disable-pip-version-check -r "$IREQ"
  touch "$istamp"
fi
echo "setup: ready ($("$VENV/bin/ansible" --version | head -1))"
