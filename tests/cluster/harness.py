"""harness: starts real raftkv processes for the cluster tests.

Owns ports, temp data dirs, node processes and their logs, HTTP helpers and
the polling wait. Must never sleep in place of a condition (every wait is a
poll with a deadline), never leave a process behind (try/finally in the
runner plus atexit here) and never touch a directory it did not create.
"""

import atexit
import fcntl
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                   "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")
HTTP_TIMEOUT = 10.0
START_TIMEOUT = float(os.environ.get("RAFTKV_START_TIMEOUT", "30"))

# RAFTKV_TEST_TLS=1: every cluster runs TLS on both ports (https:// peers,
# mutual TLS; HTTPS client port, its certificate checked against a throwaway
# CA) and every helper below speaks TLS, so each test runs unchanged.
TLS = os.environ.get("RAFTKV_TEST_TLS", "") not in ("", "0")
_certs_dir = None

_live_processes = set()   # every Popen not yet reaped, for the atexit net
_used_ports = set()


class TestFailure(AssertionError):
    """A check failed; the message is the reason printed by the runner."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def terminate(proc, timeout=15):
    """SIGTERM to a child process (not a node: Node.stop checks its exit)
    and waits; SIGKILL if it does not end in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _live_processes.discard(proc)


def binary():
    return os.path.abspath(os.environ.get("RAFTKV_BIN",
                                          os.path.join(TOP, "build", "raftkv")))


def wait_for(cond, timeout=START_TIMEOUT, what="condition", interval=0.05):
    """Polls cond() until it returns a true value (returned), or fails with
    `what` at the deadline. Exceptions from cond count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_err = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except (OSError, http.client.HTTPException, ValueError) as e:
            last_err = e
        if time.monotonic() >= deadline:
            extra = " (last error: %s)" % last_err if last_err else ""
            raise TestFailure("timed out after %.0fs waiting for %s%s"
                              % (timeout, what, extra))
        time.sleep(interval)



def hang_up_parked(node, request, write, what):
    """Sends the raw request, which must park one watcher on node (the
    raftkv_watchers gauge), checks that write() (a write elsewhere) leaves
    it parked, hangs up, and waits until the node drops that watcher:
    a client that hung up must not hold one. Returns the seconds it took."""
    base = node.metric("raftkv_watchers")
    sock = connect(node.port)
    try:
        sock.sendall(request)
        wait_for(lambda: node.metric("raftkv_watchers") == base + 1, 10, what + " to park")
        write()
        check(node.metric("raftkv_watchers") == base + 1, what + " is still parked")
    finally:
        sock.close()
    t0 = time.monotonic()
    wait_for(lambda: node.metric("raftkv_watchers") == base, 20,
             "the gauge to drop after the client of %s hung up" % what)
    return time.monotonic() - t0

def _port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


_PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "raftkv-test-ports")
_port_locks = []  # open lock files, held until this process exits


def _claim_port(port):
    """Takes an exclusive flock on a per-port file, so two test runs at once
    (CI and a developer, or two developers) never hand out the same port.
    The kernel drops the lock when this process exits."""
    try:
        os.makedirs(_PORT_LOCK_DIR, exist_ok=True)
        f = open(os.path.join(_PORT_LOCK_DIR, "%d.lock" % port), "a")
    except OSError:
        return True  # no lock dir: fall back to the bind probe alone
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return False
    _port_locks.append(f)
    return True


def free_port():
    """A loopback port that is free now. Chosen below the kernel's ephemeral
    range so outgoing connections (libcurl to peers) cannot take it between
    our probe and the node's bind, and away from the fixed ports of a
    cluster started by scripts/cluster or scripts/bench."""
    for _ in range(1000):
        port = random.randrange(15000, 30000)
        if port % 10000 in (2379, 2380, 2479, 2480):
            continue  # scripts/cluster's and scripts/bench's fixed ports
        if port not in _used_ports and _claim_port(port) and _port_free(port):
            _used_ports.add(port)
            return port
    raise TestFailure("no free loopback port found")


def certs():
    """The directory of the run's throwaway CA and certificates
    (scripts/gen-certs), made on first use and removed at exit; or the one
    $RAFTKV_TEST_CERTS names (the runner's, shared by its test processes)."""
    global _certs_dir
    if _certs_dir is None and os.environ.get("RAFTKV_TEST_CERTS"):
        _certs_dir = os.environ["RAFTKV_TEST_CERTS"]  # run.py --jobs: made once, shared
    if _certs_dir is None:
        d = tempfile.mkdtemp(prefix="raftkv-certs-")
        atexit.register(shutil.rmtree, d, True)
        subprocess.run([os.path.join(TOP, "scripts", "gen-certs"), d, "root", "alice"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _certs_dir = d
    return _certs_dir


def cert(name):
    return os.path.join(certs(), name)


def tls_flags():
    """The flags of a node in TLS mode: both ports, same certificate."""
    return ["--cert-file", cert("server.pem"), "--key-file", cert("server-key.pem"),
            "--trusted-ca-file", cert("ca.pem"),
            "--peer-cert-file", cert("server.pem"), "--peer-key-file", cert("server-key.pem"),
            "--peer-trusted-ca-file", cert("ca.pem")]


def client_context(client=None, ca="ca.pem"):
    """An SSL context trusting the test CA, presenting client-NAME.pem when
    client is given (or a (cert, key) pair of paths)."""
    ctx = ssl.create_default_context(cafile=cert(ca))
    if isinstance(client, tuple):
        ctx.load_cert_chain(client[0], client[1])
    elif client:
        ctx.load_cert_chain(cert("client-%s.pem" % client), cert("client-%s-key.pem" % client))
    return ctx


def scheme():
    return "https" if TLS else "http"


def connect(port, timeout=None, host="127.0.0.1", source=None, peer=False):
    """A raw socket to host:port, TLS-wrapped in TLS mode (for tests that
    write bytes by hand); peer=True presents a member's certificate."""
    s = socket.create_connection((host, port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    if not TLS:
        return s
    try:
        ctx = peer_context() if peer else client_context()
        return ctx.wrap_socket(s, server_hostname=host)
    except BaseException:
        s.close()
        raise


def peer_context():
    """What a member presents to another's peer port in TLS mode."""
    return client_context((cert("server.pem"), cert("server-key.pem")))


def http_connection(port, timeout=HTTP_TIMEOUT, host="127.0.0.1", context=None):
    if TLS or context:
        return http.client.HTTPSConnection(host, port, timeout=timeout,
                                           context=context or client_context())
    return http.client.HTTPConnection(host, port, timeout=timeout)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers   # dict, lower-case names
        self.body = body         # bytes

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:200])


def http_request(port, method, path, body=None, headers=None,
                 timeout=HTTP_TIMEOUT, context=None):
    """One HTTP/1.1 request to 127.0.0.1:port on a fresh connection (HTTPS
    in TLS mode)."""
    conn = http_connection(port, timeout, context=context)
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


class Node:
    """One raftkv process: its flags, data dir and log survive restarts."""

    def __init__(self, env, nid, peer_port, client_port):
        self.env = env
        self.id = nid
        self.peer_port = peer_port
        self.port = client_port
        self.peer_url = "%s://127.0.0.1:%d" % (scheme(), peer_port)
        self.data_dir = os.path.join(env.dir, "raftkv-%d" % nid)
        self.log_path = os.path.join(env.dir, "node%d.log" % nid)
        self.args = None
        self.proc = None
        self.env_vars = {}  # extra environment, e.g. RAFTKV_FAILPOINTS

    def __repr__(self):
        return "node%d" % self.id

    # ---- process control ----
    def start(self, cluster_urls=None, join=False, extra=None):
        """First start sets the flags; later calls restart with the same."""
        if self.args is None:
            self.args = ["--id", str(self.id), "--cluster", ",".join(cluster_urls),
                         "--port", str(self.port), "--data-dir", self.data_dir]
            if join:
                self.args.append("--join")
            if TLS:
                self.args += tls_flags()
            self.args += list(extra or [])
            # e.g. RAFTKV_TEST_FLAGS="--log-level debug" when hunting a bug
            self.args += os.environ.get("RAFTKV_TEST_FLAGS", "").split()
        check(not self.alive(), "%s is already running" % self)
        with open(self.log_path, "ab") as log:
            log.write(("+ raftkv %s\n" % " ".join(self.args)).encode())
            log.flush()
            self.proc = subprocess.Popen([binary()] + self.args, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, cwd=self.env.dir,
                                         env=dict(os.environ, **self.env_vars))
        _live_processes.add(self.proc)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _reap(self, timeout):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        _live_processes.discard(self.proc)
        return code

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code (fails if it hangs)."""
        check(self.alive(), "%s is not running" % self)
        self.proc.send_signal(signal.SIGTERM)
        code = self._reap(timeout)
        if code is None:
            self.proc.kill()
            self._reap(5)
            raise TestFailure("%s did not exit within %ds of SIGTERM" % (self, timeout))
        return code

    def kill(self):
        """SIGKILL: a crash."""
        check(self.alive(), "%s is not running" % self)
        self.proc.kill()
        self._reap(10)

    def restart(self):
        return self.start()

    def restart_with_failpoints(self, spec):
        """Stops cleanly, then starts again with RAFTKV_FAILPOINTS=spec."""
        check(self.stop() == 0, "%s: clean stop" % self)
        self.env_vars["RAFTKV_FAILPOINTS"] = spec
        return self.restart()

    def wait_exit(self, timeout=30):
        """Waits for the process to exit by itself; returns its exit code."""
        wait_for(lambda: not self.alive(), timeout, "%s to exit by itself" % self)
        return self._reap(5)

    def expect_stop(self, code, names, timeout=30):
        """Waits for the node to stop by itself with exit `code` and a log
        naming `names`; then drops its failpoints for the next restart."""
        got = self.wait_exit(timeout)
        check(got == code, "%s: exit code %r, want %d" % (self, got, code))
        check(names in self.log_text(), "%s: the log names the failure (%r)" % (self, names))
        self.env_vars.pop("RAFTKV_FAILPOINTS", None)

    # ---- HTTP ----
    def request(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
        return http_request(self.port, method, path, body, headers, timeout)

    def peer_request(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
        return http_request(self.peer_port, method, path, body, headers, timeout,
                            peer_context() if TLS else None)

    def put(self, key, value, timeout=HTTP_TIMEOUT):
        return self.request("PUT", "/" + key, value, timeout=timeout).status

    def get(self, key, timeout=HTTP_TIMEOUT):
        r = self.request("GET", "/" + key, timeout=timeout)
        return r.status, r.body

    def metric(self, name):
        """One unlabelled value from GET /metrics (fails if it is absent)."""
        r = self.request("GET", "/metrics", timeout=3)
        check(r.status == 200, "%s: GET /metrics answered %d" % (self, r.status))
        for line in r.text.splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
        raise TestFailure("%s: no metric %s" % (self, name))

    def status(self):
        r = self.request("GET", "/status", timeout=3)
        check(r.status == 200, "%s: GET /status answered %d" % (self, r.status))
        return r.json()

    def healthy_or_fail(self):
        """For waits: True once healthy; fails at once if the process has
        exited (no point waiting out the deadline)."""
        if self.healthy():
            return True
        check(self.alive(), "%s exited unexpectedly with code %s"
              % (self, self.proc.returncode if self.proc else None))
        return False

    def healthy(self):
        if not self.alive():
            return False
        try:
            return self.request("GET", "/health", timeout=2).status == 200
        except (OSError, http.client.HTTPException):
            return False

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


class Env:
    """A test's world: one fresh temp dir and the nodes started in it."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="raftkv-%s-" % name)
        self.nodes = []

    # ---- building clusters ----
    def new_node(self):
        """Node N+1 with fresh ports, not started (to add one to a running
        cluster: POST /N+1 its peer_url, then join_node)."""
        n = Node(self, len(self.nodes) + 1, free_port(), free_port())
        self.nodes.append(n)
        return n

    def cluster(self, n, extra=None, wait=True):
        """Starts n fresh nodes bootstrapping one cluster; waits until every
        node is healthy (has a leader) unless wait=False."""
        nodes = [self.new_node() for _ in range(n)]
        urls = [x.peer_url for x in nodes]
        for x in nodes:
            x.start(urls, extra=extra)
        if wait:
            self.wait_healthy(nodes)
        return nodes

    def join_node(self, node, extra=None):
        urls = [x.peer_url for x in self.nodes if x.id <= node.id]
        return node.start(urls, join=True, extra=extra)

    def wait_healthy(self, nodes=None, timeout=START_TIMEOUT):
        for x in (nodes or [n for n in self.nodes if n.alive()]):
            wait_for(x.healthy_or_fail, timeout, "%s to be healthy" % x)

    def leader(self, nodes=None, timeout=START_TIMEOUT):
        """The node that some live node names as leader, once they agree."""
        nodes = [n for n in (nodes or self.nodes) if n.alive()]

        def find():
            ids = set()
            for n in nodes:
                lid = n.status().get("leader")
                if not lid:
                    return None
                ids.add(lid)
            if len(ids) != 1:
                return None
            lid = ids.pop()
            return next((n for n in nodes if n.id == lid), None)
        return wait_for(find, timeout, "the live nodes to agree on a leader")

    def put_retry(self, node, key, value, timeout=START_TIMEOUT):
        """PUT that retries while the cluster has no leader (503, or no answer
        during an election): a client's normal behaviour across failover. Any
        other answer than 204/503/504 fails at once."""
        last = ["nothing"]

        def attempt():
            try:
                s = node.put(key, value, timeout=5)
            except (OSError, http.client.HTTPException) as e:
                last[0] = repr(e)
                return False
            last[0] = s
            check(s in (204, 503, 504), "PUT /%s on %s answered %s" % (key, node, s))
            return s == 204
        try:
            wait_for(attempt, timeout, "PUT /%s on %s to succeed" % (key, node))
        except TestFailure as e:
            raise TestFailure("%s (last answer: %s)" % (e, last[0])) from None

    # ---- checks and cleanup ----
    def sanitizer_reports(self):
        bad = []
        for n in self.nodes:
            text = n.log_text()
            for mark in SANITIZER_MARKS:
                if mark in text:
                    bad.append("%s: %s" % (n, mark))
                    break
        return bad

    def stop_all(self):
        """SIGTERM every live node (so LeakSanitizer runs), SIGKILL stragglers."""
        for n in self.nodes:
            if n.alive():
                n.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for n in self.nodes:
            if n.proc is None:
                continue
            left = max(0.1, deadline - time.monotonic())
            if n._reap(left) is None:
                n.proc.kill()
                n._reap(5)

    def log_tails(self, lines=25):
        out = []
        for n in self.nodes:
            tail = n.log_text().splitlines()[-lines:]
            out.append("--- %s (%s)" % (n, n.log_path))
            out.extend("    " + line for line in tail)
        return "\n".join(out)

    def cleanup(self, keep):
        self.stop_all()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


@atexit.register
def _kill_leftovers():
    for p in list(_live_processes):
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
