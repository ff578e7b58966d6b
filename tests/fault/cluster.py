"""cluster: the raftkv processes of one fault run, each on its own loopback
address (node i's peer URL is http://127.0.0.<10+i>:<port>) so the firewall
can cut single links; clients use 127.0.0.1:<client port>.

Owns process control (start, kill -9, SIGSTOP/SIGCONT, remove and re-add),
the run directory with data dirs and logs, and leader discovery.
Must never: leave a process running or stopped (stop_all continues and
terminates everything, and harness.py kills leftovers at exit), or sleep in
place of a condition.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "cluster"))
import harness  # noqa: E402  (free ports, polling, HTTP, process safety net)

wait_for = harness.wait_for
TestFailure = harness.TestFailure
FAST_FLAGS = ["--heartbeat-ms", "50", "--election-ms", "500", "--log-level", "info"]
# raftkv's --id is an index into --cluster, at most RAFT_MAX_MEMBERS (32);
# removed ids are never reused, so a run has 32 ids in all. Node i
# listens on 127.0.0.<10+i>: scripts/gen-certs names 127.0.0.1-50 in the
# test certificate, so under TLS every id's address verifies.
MAX_ID = 32


def addr_of(nid):
    return "127.0.0.%d" % (10 + nid)


class FaultNode:
    def __init__(self, run_dir, nid, peer_port, port):
        self.id = nid
        self.addr = addr_of(nid)
        self.peer_port = peer_port
        self.port = port
        self.peer_url = "%s://%s:%d" % (harness.scheme(), self.addr, peer_port)
        self.data_dir = os.path.join(run_dir, "raftkv-%d" % nid)
        self.log_path = os.path.join(run_dir, "node%d.log" % nid)
        self.run_dir = run_dir
        self.proc = None
        self.paused = False
        self.join = False
        self.removed = False    # removed from the cluster: never restarted

    def __repr__(self):
        return "n%d" % self.id

    def start(self, cluster_urls, extra):
        if self.alive():
            raise TestFailure("%s is already running" % self)
        args = ["--id", str(self.id), "--cluster", ",".join(cluster_urls),
                "--port", str(self.port), "--data-dir", self.data_dir] + list(extra)
        if harness.TLS:  # RAFTKV_TEST_TLS=1: both ports over TLS, as in the cluster suite
            args += harness.tls_flags()
        if self.join:
            args.append("--join")
        with open(self.log_path, "ab") as log:
            log.write(("+ raftkv %s\n" % " ".join(args)).encode())
            log.flush()
            self.proc = subprocess.Popen([harness.binary()] + args, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.run_dir)
        harness._live_processes.add(self.proc)
        self.paused = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _reap(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        harness._live_processes.discard(self.proc)
        return True

    def kill9(self):
        if self.alive():
            self.proc.kill()
            self._reap(10)
        self.paused = False

    def pause(self):
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def terminate(self):
        """SIGCONT + SIGTERM, SIGKILL if it hangs."""
        if not self.alive():
            return
        self.resume()
        self.proc.send_signal(signal.SIGTERM)
        if not self._reap(15):
            self.proc.kill()
            self._reap(5)

    def request(self, method, path, body=None, timeout=3.0):
        return harness.http_request(self.port, method, path, body, None, timeout)

    def status(self, timeout=2.0):
        r = self.request("GET", "/status", timeout=timeout)
        return r.json() if r.status == 200 else None


class Cluster:
    def __init__(self, run_dir, n, extra=None):
        self.dir = run_dir
        self.extra = list(FAST_FLAGS if extra is None else extra)
        self.all = []   # every node ever, by id
        for _ in range(n):
            self.all.append(self._new_node())

    def _new_node(self):
        return FaultNode(self.dir, len(self.all) + 1, harness.free_port(), harness.free_port())

    @property
    def nodes(self):
        """The current members (a removed node's id is never reused)."""
        return [x for x in self.all if not x.removed]

    @property
    def urls(self):
        return [x.peer_url for x in self.all]   # --cluster: indexed by id

    def ids_left(self):
        return MAX_ID - len(self.all)

    def node(self, nid):
        return self.all[nid - 1]

    def client_node(self, i):
        """Client i's node now: members change under the membership nemesis."""
        members = self.nodes
        return members[i % len(members)]

    def start(self):
        for x in self.nodes:
            x.start(self.urls, self.extra)
        self.wait_healthy(60)

    def live(self):
        return [x for x in self.nodes if x.alive() and not x.paused]

    def restart(self, x):
        x.start(self.urls, self.extra)

    def wait_healthy(self, timeout=60, nodes=None):
        for x in nodes or self.nodes:
            def ok(x=x):
                if not x.alive():
                    raise TestFailure("%s exited (code %s)" % (x, x.proc and x.proc.returncode))
                return x.request("GET", "/health", timeout=2).status == 200
            wait_for(ok, timeout, "%s to be healthy" % x)

    def leader(self, among=None, timeout=None):
        """The leader that every live node in `among` names, or None (no
        waiting when timeout is None)."""
        nodes = [x for x in (among or self.live()) if x.alive() and not x.paused]

        def find():
            ids = set()
            for x in nodes:
                st = x.status(timeout=1)
                if not st or not st.get("leader"):
                    return None
                ids.add(st["leader"])
            if len(ids) != 1:
                return None
            lid = ids.pop()
            return self.node(lid) if 1 <= lid <= len(self.all) else None
        if timeout is None:
            try:
                return find()
            except (OSError, ValueError, harness.http.client.HTTPException):
                return None
        return wait_for(find, timeout, "the nodes %s to agree on a leader" % nodes)

    def remove(self, x, via):
        """Removes member x through node `via`; waits for x to stop itself."""
        def attempt():
            return via.request("DELETE", "/members/%d" % x.id, timeout=5).status in (200, 204, 404)
        try:
            wait_for(attempt, 30, "DELETE /members/%d on %s" % (x.id, via))
            wait_for(lambda: not x.alive(), 20, "%s to stop after its removal" % x)
        finally:
            x.kill9()   # reaps it (or ends one that did not stop by itself)
            x.removed = True

    def add_new(self, via):
        """Adds a node under the next unused id (ids are never reused) with
        a fresh data dir and its own address, and starts it with --join."""
        if self.ids_left() <= 0:
            raise TestFailure("no id left: raftkv allows ids 1..%d and never reuses one" % MAX_ID)
        x = self._new_node()
        shutil.rmtree(x.data_dir, ignore_errors=True)

        def attempt():
            return via.request("POST", "/%d" % x.id, x.peer_url, timeout=5).status in (200, 204)
        self.all.append(x)   # its id is used up even if the add fails
        try:
            wait_for(attempt, 30, "POST /%d on %s" % (x.id, via))
        except TestFailure:
            x.removed = True   # never started; the error is the nemesis's to report
            raise
        x.join = True
        self.restart(x)
        return x

    def stop_all(self):
        for x in self.all:
            x.resume()
        for x in self.all:
            if x.alive():
                x.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for x in self.all:
            if x.proc is not None and not x._reap(max(0.1, deadline - time.monotonic())):
                x.proc.kill()
                x._reap(5)

    def converge(self, timeout=60):
        """Waits until every node is healthy and has applied the same index as
        the leader (so serializable reads on each node see everything)."""
        self.wait_healthy(timeout)
        lead = self.leader(self.nodes, timeout)

        def same():
            want = lead.status()["raft_index"]
            return all((x.status() or {}).get("raft_applied_index", -1) >= want
                       for x in self.nodes)
        wait_for(same, timeout, "every node to apply the leader's index")
        return lead
