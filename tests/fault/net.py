"""net: real packet-level partitions between raftkv nodes with iptables.

Owns one iptables chain per run (RAFTKV_FAULT_<pid>), hooked into INPUT,
and the DROP rules in it. Node i sends every peer request from its own
loopback address 127.0.0.<10+i>, so the directed link i->j is exactly
"tcp from addr(i) to addr(j), destination port = j's peer port"; client
traffic (127.0.0.1 to client ports) is never matched.

Must never: touch a rule or chain it did not create (except a chain of this
name left by a run whose process is dead), or leave its chain behind — it is
flushed and deleted by close(), which the runner calls in finally, atexit
and on SIGTERM/SIGINT.
"""

import atexit
import os
import re
import shutil
import subprocess

PREFIX = "RAFTKV_FAULT_"


def _ipt(*args):
    """Runs iptables -w; returns (rc, output)."""
    p = subprocess.run(["iptables", "-w"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _drop_chain(chain):
    _ipt("-D", "INPUT", "-j", chain)
    _ipt("-F", chain)
    _ipt("-X", chain)


def sweep_stale_chains():
    """Flushes and deletes chains left by crashed runs (their pid is dead).
    Returns their names."""
    rc, out = _ipt("-S")
    if rc != 0:
        return []
    stale = []
    for m in re.finditer(r"^-N (%s(\d+))$" % PREFIX, out, re.M):
        if not _pid_alive(int(m.group(2))):
            _drop_chain(m.group(1))
            stale.append(m.group(1))
    return stale


def unavailable_reason():
    """None if partitions can be made here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("iptables") is None:
        return "iptables not installed"
    rc, out = _ipt("-S", "INPUT")
    if rc != 0:
        return "iptables does not work: %s" % out.strip()[:200]
    return None


class Firewall:
    """The run's chain. cut(i, j) drops node i's connections to node j."""

    def __init__(self, addr_of, peer_port_of):
        self.addr_of = addr_of            # node id -> loopback address
        self.peer_port_of = peer_port_of  # node id -> peer port
        self.chain = "%s%d" % (PREFIX, os.getpid())
        self.cuts = set()
        self.open = False
        self.stale = sweep_stale_chains()
        rc, out = _ipt("-S", self.chain)
        if rc == 0:  # ours, from an earlier Firewall in this process
            _drop_chain(self.chain)
        self._must("-N", self.chain)
        self.open = True
        atexit.register(self.close)
        self._must("-I", "INPUT", "-j", self.chain)

    def _must(self, *args):
        rc, out = _ipt(*args)
        if rc != 0:
            raise RuntimeError("iptables %s: %s" % (" ".join(args), out.strip()))

    def cut(self, i, j):
        """Drops every packet of connections node i opens to node j's peer
        port (i can no longer send to j; j can still send to i)."""
        if (i, j) in self.cuts:
            return
        self._must("-A", self.chain, "-p", "tcp", "-s", self.addr_of(i), "-d", self.addr_of(j),
                   "--dport", str(self.peer_port_of(j)), "-j", "DROP")
        self.cuts.add((i, j))

    def cut_both(self, i, j):
        self.cut(i, j)
        self.cut(j, i)

    def heal(self):
        if self.open:
            self._must("-F", self.chain)
        self.cuts.clear()

    def rules(self):
        rc, out = _ipt("-S", self.chain)
        return [x for x in out.splitlines() if x.startswith("-A")] if rc == 0 else []

    def close(self):
        if self.open:
            _drop_chain(self.chain)
            self.open = False
            self.cuts.clear()
