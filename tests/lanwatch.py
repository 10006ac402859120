"""Watch a lab host from the far side of its LAN: a bounded loop of TCP connects to it,
reporting how long it did not answer (standard library only).

Run in the lab's wire namespace (`Lab.wire_argv`), where the LAN's DHCP server lives:

    python3 tests/lanwatch.py ADDRESS [--port 9] [--max 300] [--stop FILE]

It connects every 0.1 s (each attempt waits at most 0.3 s), until FILE exists or `--max`
seconds passed, then prints one JSON object: attempts, failures, the windows during which
the host did not answer (start and length in seconds from the start), and the longest.
`Watch` runs it in the background from a test. Speed belongs to bench/: the tests print
these windows, they do not assert on them.

The host answers a connect with a completed handshake (a listening port) or a reset (a
closed one): both prove its address is reachable. By default the watcher connects to a
closed port (9), not to sshd: OpenSSH 9.8 and later (Debian 13's 10.0) penalise a source
address that connects without authenticating (PerSourcePenalties, on by default) by
refusing it for a while, and the watcher shares its address with the controller's ssh."""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def attempt(address, port, timeout=0.3):
    """Whether the host answered: a connection, or a reset from a closed port."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def watch(address, port, limit, stop):
    t0 = time.monotonic()
    attempts = failures = 0
    windows, down_since = [], None
    while time.monotonic() - t0 < limit and not (stop and os.path.exists(stop)):
        now = time.monotonic() - t0
        ok = attempt(address, port)
        attempts += 1
        if ok and down_since is not None:
            windows.append([round(down_since, 2), round(now - down_since, 2)])
            down_since = None
        elif not ok:
            failures += 1
            if down_since is None:
                down_since = now
        time.sleep(max(0.0, 0.1 - (time.monotonic() - t0 - now)))
    if down_since is not None:
        windows.append([round(down_since, 2), None])  # still down at the end
    longest = max((w[1] if w[1] is not None else float("inf") for w in windows), default=0.0)
    return {"address": address, "attempts": attempts, "failures": failures, "windows": windows,
            "longest_s": None if longest == float("inf") else longest,
            "ended_down": down_since is not None}


class Watch:
    """Run the watcher in a lab's wire namespace in the background: `with Watch(lab, addr) as
    w: ...; w.result` (the dict above)."""

    def __init__(self, lab, address, port=9, limit=600):
        self.lab, self.address, self.port, self.limit = lab, address, port, limit
        self.result = None

    def __enter__(self):
        fd, self.stop = tempfile.mkstemp(prefix="kvmnet-lanwatch-", dir="/tmp")
        os.close(fd)
        os.unlink(self.stop)
        argv = [sys.executable, os.path.abspath(__file__), self.address, "--port", str(self.port),
                "--max", str(self.limit), "--stop", self.stop]
        self.proc = subprocess.Popen(self.lab.wire_argv(argv), stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)  # its first connects precede what is watched
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)  # and some follow it
        open(self.stop, "w").close()
        try:
            out, _ = self.proc.communicate(timeout=30)
            self.result = json.loads(out)
        finally:
            os.unlink(self.stop)
            if self.proc.poll() is None:
                self.proc.kill()
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("address")
    ap.add_argument("--port", type=int, default=9)
    ap.add_argument("--max", type=float, default=300)
    ap.add_argument("--stop")
    a = ap.parse_args()
    print(json.dumps(watch(a.address, a.port, a.max, a.stop)))


if __name__ == "__main__":
    main()
