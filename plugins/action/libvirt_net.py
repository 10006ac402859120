# -*- coding: utf-8 -*-
# Copyright: kvmnet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Runs the libvirt_net binary (files/bin/<arch>/libvirt_net) on the host in one round trip."""

from __future__ import annotations

from ansible_collections.kvmnet.network.plugins.plugin_utils.binary_module import BinaryModuleAction


class ActionModule(BinaryModuleAction):
    MODULE = "libvirt_net"
