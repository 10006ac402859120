# -*- coding: utf-8 -*-
# Copyright: kvmnet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Run one of this collection's static binary modules on a managed host in one round trip.

Every kvmnet module is a static Linux binary per architecture, shipped in this collection as
``files/bin/<arch>/<module>`` (``uname -m`` names: ``x86_64``, ``aarch64``). Run as a plain
binary module, Ansible would make a remote tmp dir, copy the binary and an args file, chmod
them, run, and remove the dir: six or seven ssh round trips per task. This action plugin
instead keeps each binary in a cache on the host, named by its sha256, and per task sends ONE
remote command that:

1. learns the host's architecture (``uname -m``) and picks the sha256 of our binary for it
   (forked workers share no memory, so every task learns it again: one ``uname``, ~1 ms);
2. makes sure the cache ``<remote_tmp>/kvmnet-bin`` is private to the user the module runs
   as (with become, the become user: ``~`` is theirs) along its whole path: a directory (not
   a symlink) owned by that user with mode 0700, resolved to its physical path, every
   directory above it up to ``/`` owned by that user or root and writable by no one else
   (unless sticky, as /tmp is), so that no one else can rename any of them between the
   check and the exec;
3. checks the cached binary (a regular file owned by that user) against its sha256;
4. writes the task's arguments (JSON on stdin) to a private file in the cache, runs the
   binary with it (the binary-module protocol: ``<binary> <args file>``), removes the file.

When the binary is missing or different, the host says so and prints nothing else; the
next command sends the arguments and the binary together, writes the binary atomically
(a private temporary file checked against the sha256, then renamed), and runs it. So the
first task of each module on a host costs two round trips, every later task one.

A host where the cache cannot be made or written (a read-only file system, a full disk) or
is not private (planted by, or writable for, another user, or under a directory another user
owns) gets the plain transfer (a tmp dir per task, as Ansible sends any binary module), with
a warning when the cache is not private or the binary could not be written into it; so does
a connection that cannot pass data on stdin. A host whose ``uname -m`` names an architecture
this collection has no binary for fails the task, and nothing runs there. Check mode, diff, no_log, become, ``environment`` and
``ansible_remote_tmp`` work as for any module: the binary gets the same ``_ansible_*``
arguments. Async is refused (the modules are short; a host-side job would need Python).

A module plugin of this collection is one small file, ``plugins/action/<module>.py``::

    from ansible_collections.kvmnet.network.plugins.plugin_utils.binary_module import BinaryModuleAction

    class ActionModule(BinaryModuleAction):
        MODULE = "<module>"
"""

from __future__ import annotations

import hashlib
import json
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.vars.clean import remove_internal_keys

display = Display()

COLLECTION = "kvmnet.network"
COLLECTION_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.join(COLLECTION_DIR, "files", "bin")
ARCHES = ("x86_64", "aarch64")
CACHE_NAME = "kvmnet-bin"
MARK = "KVMNET-BINCACHE:"
# Binary modules speak the 'legacy' JSON profile (as ansible-core's own binary-module path).
PROFILE = "legacy"

# The remote side, POSIX sh with coreutils (uname, id, stat, sha256sum, mktemp). @HASHES@ is a
# `case` on `uname -m`, @TMP@ the remote_tmp setting (expanded by the shell as Ansible itself
# does: `~` and variables are the become user's), @RUN@ what runs the binary "$b" with "$f".
# Stdout is either a line starting with MARK (nothing ran) or the module's own output.
#
# The cache must be private to the user the module runs as ($u) along its whole path, not only
# at its end: the path is looked up again when the binary runs, so whoever may rename any of its
# directories between the sha256 check and the exec could swap what runs. So the cache
# directory is resolved to its physical path (no symbolic link left in it; the binary runs by
# that path), then every directory of that path from / is checked, in one `stat`: the cache
# itself owned by $u with mode 0700, every directory above it owned by root or $u and writable
# by no one else (group or others) unless sticky (as /tmp is: there only an entry's owner may
# rename it). Then nothing on that path can change but by root or $u.
_PREAMBLE = r"""umask 077
m=`uname -m`
case $m in
@HASHES@*) echo "@MARK@arch:$m"; exit 0;;
esac
u=`id -u`
d=`echo @TMP@`/@CACHE@
case $d in /*) ;; *) d=./$d;; esac
mkdir -p "$d" 2>/dev/null && [ -d "$d" ] || { echo "@MARK@unwritable:$m:cannot make the binary cache $d"; exit 0; }
[ ! -h "$d" ] || { echo "@MARK@unsafe:$m:the binary cache $d is a symbolic link"; exit 0; }
d=`cd -P "$d" && pwd -P` && [ -n "$d" ] || { echo "@MARK@unwritable:$m:cannot enter the binary cache"; exit 0; }
set -- "$d"
p=$d
while [ "$p" != / ]; do p=${p%/*}; p=${p:-/}; set -- "$@" "$p"; done
s=`stat -c "%u %a %n" -- "$@"` || { echo "@MARK@unsafe:$m:the binary cache $d: cannot read the owner of every directory of its path"; exit 0; }
w=
while read -r o a n; do
  if [ -z "$w" ]; then
    [ "$o $a" = "$u 700" ] || { w="owner and mode $o $a (uid $u)"; break; }
    w=.
  elif [ "$o" != "$u" ] && [ "$o" != 0 ]; then w="$n is owned by uid $o (uid $u)"; break
  else
    case $a in *[!0-7]*|"") w="$n: mode $a"; break;; esac
    if [ $((0$a & 022)) != 0 ] && [ $((0$a & 01000)) = 0 ]; then w="$n is writable by others (mode $a)"; break; fi
  fi
done <<EOF
$s
EOF
[ "$w" = . ] || { echo "@MARK@unsafe:$m:the binary cache $d: $w"; exit 0; }
b=$d/$h
f=
t=
trap "rm -f \"\$f\" \"\$t\"" 0
trap "exit 129" 1 2 15
"""

_VERIFY = r"""[ -f "$b" ] && [ ! -h "$b" ] && [ "`stat -c %u "$b"`" = "$u" ] && [ "`sha256sum <"$b"`" = "$h  -" ]"""

# Nothing may be written in the cache (a read-only file system, a full disk): the plain transfer.
_NO_WRITE = r"""{ echo "@MARK@unwritable:$m:cannot write into the binary cache $d"; exit 0; }"""

# The cached binary is there: arguments on stdin.
_RUN_CACHED = _PREAMBLE + _VERIFY + r""" || { echo "@MARK@missing:$m"; exit 0; }
f=`mktemp "$d/args.XXXXXX"` && cat >"$f" || """ + _NO_WRITE + r"""
@RUN@
"""

# The binary is sent: one line of arguments, then the binary's bytes, on stdin.
_SEND_AND_RUN = _PREAMBLE + r"""f=`mktemp "$d/args.XXXXXX"` && t=`mktemp "$d/new.XXXXXX"` || """ + _NO_WRITE + r"""
IFS= read -r l && printf "%s\n" "$l" >"$f" && cat >"$t" && chmod 700 "$t" &&
  [ "`sha256sum <"$t"`" = "$h  -" ] && mv -f "$t" "$b" || { echo "@MARK@sendfailed:$m"; exit 0; }
t=
""" + _VERIFY + r""" || { echo "@MARK@sendfailed:$m"; exit 0; }
@RUN@
"""

_hash_cache: dict = {}


def binary_path(module: str, arch: str) -> str:
    return os.path.join(BIN_DIR, arch, module)


def sha256_of(path: str) -> str:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


class BinaryModuleAction(ActionBase):
    """Base of every kvmnet action plugin: set MODULE to the module's name."""

    MODULE: str = ""
    _supports_check_mode = True
    _supports_async = False

    # ------------------------------------------------------------------ entry point
    def run(self, tmp=None, task_vars=None):
        if self._task.async_val:
            raise AnsibleActionFail(
                f"{COLLECTION}.{self.MODULE} does not support async: its binary runs in one short "
                "round trip and the managed host has no Python for a background job. "
                "Remove 'async' (and 'poll') from this task.")
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}

        module_args = dict(self._task.args)
        self._update_module_args(f"{COLLECTION}.{self.MODULE}", module_args, task_vars)
        args_json = json.dumps(module_args, cls=get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE))
        if "\n" in args_json:  # the send-and-run command reads exactly one line of arguments
            raise AnsibleActionFail("internal error: module arguments encoded on more than one line")
        args_bytes = args_json.encode("utf-8", errors="surrogateescape")

        hashes = {a: sha256_of(binary_path(self.MODULE, a)) for a in ARCHES
                  if os.path.isfile(binary_path(self.MODULE, a))}
        if not hashes:
            raise AnsibleActionFail(f"{COLLECTION}.{self.MODULE}: no binary in {BIN_DIR} (was the collection built "
                                    "with 'make build'?)")

        warnings = []
        if self._can_send_stdin():
            res = self._remote(_RUN_CACHED, hashes, task_vars, args_bytes)
            mark = self._mark(res)
            if mark and mark[0] == "missing":
                arch = mark[1]
                display.vvv(f"kvmnet: {self.MODULE} ({arch}, sha256 {hashes[arch]}) is not in the host's cache: "
                            "sending it", host=self._host_name(task_vars))
                with open(binary_path(self.MODULE, arch), "rb") as f:
                    data = args_bytes + b"\n" + f.read()
                res = self._remote(_SEND_AND_RUN, hashes, task_vars, data)
                mark = self._mark(res)
            if mark is None:
                display.vvv(f"kvmnet: {self.MODULE} ran from the host's binary cache", host=self._host_name(task_vars))
                data = self._module_result(res)
            else:
                data = self._after_mark(mark, hashes, module_args, warnings, task_vars)
        else:
            display.vvv(f"kvmnet: connection {self._connection.transport} cannot pass data on stdin here: "
                        "plain transfer", host=self._host_name(task_vars))
            res = self._low_level_execute_command("uname -m", sudoable=False)
            arch = res["stdout"].strip()
            self._check_arch(arch, hashes)
            data = self._plain_transfer(arch, module_args)

        if warnings:
            data["warnings"] = warnings + list(data.get("warnings") or [])
        result.update(data)
        return result

    # ------------------------------------------------------------------ helpers
    def _host_name(self, task_vars):
        return task_vars.get("inventory_hostname")

    def _can_send_stdin(self) -> bool:
        """Whether the connection passes data on stdin to a command, also through become
        (the same condition as pipelining, without the 'pipelining' setting: that setting
        exists for sudo's requiretty, which a command fed on stdin cannot satisfy either way)."""
        conn = self._connection
        return bool(conn.has_pipelining and (not conn.become or conn.become.pipelining)
                    and conn.allow_executable)

    def _remote(self, template: str, hashes: dict, task_vars: dict, in_data: bytes) -> dict:
        env_string = self._compute_environment_string().strip()
        run = (env_string + ' ' if env_string else '') + '"$b" "$f"'
        cases = "".join(f"{a}) h={h};;\n" for a, h in hashes.items())
        remote_tmp = self.get_shell_option("remote_tmp", default="~/.ansible/tmp")
        script = (template.replace("@HASHES@", cases).replace("@MARK@", MARK).replace("@CACHE@", CACHE_NAME)
                  .replace("@RUN@", run).replace("@TMP@", remote_tmp))
        # _low_level_execute_command runs it with the play's shell executable (/bin/sh -c),
        # through become when the task has it, and appends " && sleep 0" (its mitigation of an
        # ssh race): without a final newline that joins the last line, which runs the binary,
        # so the module's exit status stays the command's.
        return self._low_level_execute_command(script.rstrip("\n"), sudoable=True, in_data=in_data)

    @staticmethod
    def _mark(res: dict):
        out = res.get("stdout", "").strip()
        if out.startswith(MARK) and "\n" not in out:
            return out[len(MARK):].split(":", 2)
        return None

    def _check_arch(self, arch: str, hashes: dict):
        if arch not in hashes:
            built = ", ".join(hashes)
            raise AnsibleActionFail(f"{COLLECTION}.{self.MODULE} has no binary for this host's architecture "
                                    f"{arch!r} (uname -m; this collection has: {built}); nothing was run "
                                    "on the host")

    def _after_mark(self, mark, hashes, module_args, warnings, task_vars) -> dict:
        """The host ran nothing and said why: fail (an architecture we have no binary for), or
        send the module the plain way, saying why (a warning when something is wrong)."""
        kind, arch = mark[0], mark[1]
        detail = mark[2] if len(mark) > 2 else ""
        self._check_arch(arch, hashes)  # "arch": never in hashes, so this fails the task
        if kind == "unsafe":
            warnings.append(f"{COLLECTION}: {detail}; it is not private to the user the module runs as, so it "
                            "was not used: the module was sent in a temporary directory, as Ansible sends any "
                            "module (give ansible_remote_tmp a path only that user and root can change)")
        elif kind == "unwritable":
            display.vvv(f"kvmnet: {detail}: plain transfer", host=self._host_name(task_vars))
        elif kind == "sendfailed":
            warnings.append(f"{COLLECTION}: writing {self.MODULE} into the host's binary cache failed; "
                            "the module was sent in a temporary directory")
        else:
            raise AnsibleActionFail(f"{COLLECTION}.{self.MODULE}: unexpected answer from the host: "
                                    f"{MARK}{':'.join(mark)}")
        return self._plain_transfer(arch, module_args)

    def _module_result(self, res: dict) -> dict:
        """What _execute_module makes of a module's output."""
        data = self._parse_returned_data(res, PROFILE)
        data.pop("_ansible_suppress_tmpdir_delete", None)
        remove_internal_keys(data)
        return data

    def _plain_transfer(self, arch: str, module_args: dict) -> dict:
        """The way Ansible runs any binary module: a remote tmp dir, the binary and an args
        file copied into it, permissions fixed for become, run, the dir removed."""
        made_tmp = self._connection._shell.tmpdir is None
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        try:
            args = dict(module_args)
            if not self._is_become_unprivileged():
                args["_ansible_tmpdir"] = tmpdir
            shell = self._connection._shell
            remote_bin = shell.join_path(tmpdir, self.MODULE)
            remote_args = shell.join_path(tmpdir, "args")
            self._transfer_file(binary_path(self.MODULE, arch), remote_bin)
            self._transfer_data(remote_args, json.dumps(args, cls=get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE)))
            self._fixup_perms2([tmpdir, remote_bin, remote_args], self._get_remote_user())
            cmd = shell.build_module_command(self._compute_environment_string(), None, remote_bin, arg_path=remote_args)
            res = self._low_level_execute_command(cmd, sudoable=True)
            return self._module_result(res)
        finally:
            if made_tmp:
                self._remove_tmp_path(self._connection._shell.tmpdir)
