"""TLS on both ports (docs/SECURITY.md): a cluster whose peers talk mutual
TLS and whose client port is HTTPS only, driven with curl --cacert through
every node; plain HTTP refused; a peer without a certificate from the
cluster's CA refused in the handshake while the node carries on; client
certificates required with --client-cert-auth; certificates read again on
SIGHUP. These tests set their TLS flags themselves, so they run the same
in the plain and the TLS pass of the suite.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess

import harness
from harness import cert, check, wait_for


def _tls_cluster(env, n, client_cert_auth=False):
    nodes = [env.new_node() for _ in range(n)]
    for x in nodes:
        x.peer_url = "https://127.0.0.1:%d" % x.peer_port
    urls = [x.peer_url for x in nodes]
    extra = [] if harness.TLS else harness.tls_flags()
    if client_cert_auth:
        extra.append("--client-cert-auth")
    for x in nodes:
        x.start(urls, extra=extra)
    for x in nodes:
        wait_for(lambda: _curl(x, "GET", "/health")[0] == 200, harness.START_TIMEOUT,
                 "%s to be healthy over TLS" % x)
    return nodes


def _curl(node, method, path, data=None, client="root", extra=()):
    """curl over HTTPS with the test CA (and a client certificate when the
    cluster asks for one): (status, body)."""
    cmd = ["curl", "-sS", "--max-time", "10", "--cacert", cert("ca.pem"), "-X", method,
           "-o", "-", "-w", "\n%{http_code}"]
    if client:
        cmd += ["--cert", cert("client-%s.pem" % client), "--key", cert("client-%s-key.pem" % client)]
    if data is not None:
        cmd += ["--data-binary", data]
    cmd += list(extra) + ["https://127.0.0.1:%d%s" % (node.port, path)]
    out = subprocess.run(cmd, capture_output=True, timeout=30)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code or 0), body


def _handshake(port, context):
    """Opens TLS to port with context and sends one request; returns the
    answer's first bytes, or the error that ended the handshake."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        t = context.wrap_socket(s, server_hostname="127.0.0.1")
        t.sendall(b"GET /raft/info HTTP/1.1\r\nHost: x\r\n\r\n")
        return t.recv(100)
    except (ssl.SSLError, OSError) as e:
        return e
    finally:
        s.close()


def test_tls_cluster_put_get_watch_lease_with_curl(env):
    nodes = _tls_cluster(env, 3)
    for i, n in enumerate(nodes):
        st, _ = _curl(n, "PUT", "/tls-%d" % i, "v%d" % i)
        check(st == 204, "PUT through %s over TLS: %d" % (n, st))
    for n in nodes:
        for i in range(3):
            st, body = _curl(n, "GET", "/tls-%d" % i)
            check((st, body) == (200, b"v%d" % i), "GET /tls-%d on %s: %d %r" % (i, n, st, body))
    for n in nodes:
        st, body = _curl(n, "GET", "/watch/tls-0?start_revision=1")
        check(st == 200 and json.loads(body)["events"], "watch on %s: %d %r" % (n, st, body))
        st, body = _curl(n, "POST", "/lease", '{"ttl": 30}')
        check(st == 200, "lease grant on %s: %d %r" % (n, st, body))
        lid = json.loads(body)["id"]
        st, body = _curl(n, "PUT", "/kv/leased-%d?lease=%s" % (n.id, lid), "x")
        check(st == 200, "PUT with a lease on %s: %d %r" % (n, st, body))
        st, body = _curl(n, "GET", "/lease/%s?keys=true" % lid)
        check(st == 200 and json.loads(body).get("keys"), "lease keys on %s: %r" % (n, body))


def test_plain_http_to_tls_client_port_refused(env):
    (n,) = _tls_cluster(env, 1)
    r = subprocess.run(["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w",
                        "%{http_code}", "http://127.0.0.1:%d/health" % n.port],
                       capture_output=True, timeout=30)
    check(r.stdout == b"000", "plain HTTP got an answer: %r" % r.stdout)
    st, _ = _curl(n, "GET", "/health")
    check(st == 200 and n.alive(), "the node serves HTTPS after a plain request")
    # libmicrohttpd's word on it is a line of ours: level, node id, listener
    said = wait_for(lambda: [l for l in n.log_text().splitlines() if "client listener" in l],
                    10, "the failed handshake in the log")
    check(all(" WARN " in l and "node=" in l for l in said), "the lines: %r" % said)
    bare = [l for l in n.log_text().splitlines() if l.startswith("Error:")]
    check(not bare, "lines without a level or node id: %r" % bare)


def test_peer_without_cluster_certificate_refused(env):
    nodes = _tls_cluster(env, 3)
    target = nodes[1]
    no_cert = ssl.create_default_context(cafile=cert("ca.pem"))
    other = ssl.create_default_context(cafile=cert("ca.pem"))
    other.load_cert_chain(cert("other.pem"), cert("other-key.pem"))
    member = ssl.create_default_context(cafile=cert("ca.pem"))
    member.load_cert_chain(cert("server.pem"), cert("server-key.pem"))
    for what, ctx in (("no certificate", no_cert), ("another CA's certificate", other)):
        got = _handshake(target.peer_port, ctx)
        check(isinstance(got, Exception) or got == b"",
              "a peer with %s got an answer: %r" % (what, got))
    got = _handshake(target.peer_port, member)
    check(isinstance(got, bytes) and got.startswith(b"HTTP/1.1 200"),
          "a member's certificate is accepted: %r" % (got,))
    # plain HTTP to the peer port gets nothing either
    s = socket.create_connection(("127.0.0.1", target.peer_port), timeout=5)
    try:
        s.sendall(b"POST /raft/message HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nRKV1")
        s.settimeout(5)
        try:
            data = s.recv(100)
        except OSError:
            data = b""
        check(not data.startswith(b"HTTP/1.1 2"), "plain HTTP to a TLS peer port: %r" % data)
    finally:
        s.close()
    check(target.alive(), "the refused peers harmed %s" % target)
    st, _ = _curl(nodes[0], "PUT", "/after-strangers", "ok")
    check(st == 204, "writes after the refused peers: %d" % st)
    wait_for(lambda: _curl(target, "GET", "/after-strangers") == (200, b"ok"),
             10, "the write to reach %s" % target)
    check("refused a certificate" in target.log_text(), "the refusal is logged")


def test_client_cert_auth_requires_a_certificate_from_the_ca(env):
    (n,) = _tls_cluster(env, 1, client_cert_auth=True)
    st, _ = _curl(n, "GET", "/health", client=None)
    check(st == 0, "no client certificate: got HTTP %d" % st)
    st, _ = _curl(n, "GET", "/health", client=None,
                  extra=["--cert", cert("other.pem"), "--key", cert("other-key.pem")])
    check(st == 0, "another CA's client certificate: got HTTP %d" % st)
    st, _ = _curl(n, "PUT", "/with-cert", "yes", client="alice")
    check(st == 204, "with a client certificate: %d" % st)


def _served_certificate(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def test_sighup_reloads_certificates(env):
    """Rotate every file of a one-node cluster (a new CA too): after
    SIGHUP, new connections get the new certificate and the node goes on."""
    mine = os.path.join(env.dir, "certs")
    os.makedirs(mine)
    for f in ("server.pem", "server-key.pem", "ca.pem"):
        shutil.copy(cert(f), mine)
    n = env.new_node()
    n.peer_url = "https://127.0.0.1:%d" % n.peer_port
    files = ["--cert-file", "server.pem", "--key-file", "server-key.pem",
             "--peer-cert-file", "server.pem", "--peer-key-file", "server-key.pem",
             "--peer-trusted-ca-file", "ca.pem"]
    n.start([n.peer_url], extra=[x if x.startswith("--") else os.path.join(mine, x)
                                 for x in files])
    wait_for(lambda: _curl(n, "GET", "/health")[0] == 200, harness.START_TIMEOUT,
             "the node to serve HTTPS")
    before = (_served_certificate(n.port), _served_certificate(n.peer_port))
    fresh = os.path.join(env.dir, "fresh")
    subprocess.run([os.path.join(harness.TOP, "scripts", "gen-certs"), fresh], check=True,
                   stdout=subprocess.DEVNULL)
    for f in ("server.pem", "server-key.pem", "ca.pem"):
        shutil.copy(os.path.join(fresh, f), os.path.join(mine, f))
    n.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: _served_certificate(n.port) != before[0], 10,
             "the client port to serve the new certificate")
    # the two ports reload one after the other
    wait_for(lambda: _served_certificate(n.peer_port) != before[1], 10,
             "the peer port to serve the new one too")
    check(n.alive(), "SIGHUP stopped the node")
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert",
                        os.path.join(fresh, "ca.pem"), "-XPUT", "-w", "%{http_code}",
                        "https://127.0.0.1:%d/rotated" % n.port, "--data-binary", "yes"],
                       capture_output=True, timeout=30)
    check(r.stdout == b"204", "a write verified by the new CA: %r %r" % (r.stdout, r.stderr))
    # a broken file on the next SIGHUP keeps the working set
    with open(os.path.join(mine, "server-key.pem"), "w") as f:
        f.write("not a key\n")
    n.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "certificates not reloaded" in n.log_text(), 10, "the refusal in the log")
    check(_served_certificate(n.port) != before[0] and n.alive(), "the node kept the new set")


def test_unusable_certificate_files_refuse_to_start(env):
    """A key from another certificate, a missing file, a CA file with no
    certificate: the node says which file and stops (exit 1), serving
    nothing; an incomplete set of flags is a usage error (exit 2)."""
    junk = os.path.join(env.dir, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    cases = [
        (["--cert-file", cert("server.pem"), "--key-file", cert("other-key.pem")],
         "does not belong to the certificate", 1),
        (["--cert-file", os.path.join(env.dir, "missing.pem"), "--key-file",
          cert("server-key.pem")], "missing.pem", 1),
        (["--cert-file", cert("server.pem"), "--key-file", cert("server-key.pem"),
          "--trusted-ca-file", junk], "junk.pem", 1),
        (["--cert-file", cert("server.pem")], "--cert-file and --key-file go together", 2),
    ]
    for i, (flags, want, code) in enumerate(cases):
        n = env.new_node()
        plain = "http://127.0.0.1:%d" % n.peer_port
        n.args = ["--id", "1", "--cluster", plain, "--port", str(n.port),
                  "--data-dir", n.data_dir] + flags
        n.start()
        got = n.wait_exit(30)
        check(got == code, "case %d: exit %s, want %d" % (i, got, code))
        check(want in n.log_text(), "case %d: %r not in the log: %s" % (i, want, n.log_text()[-400:]))


def test_peer_whose_certificate_does_not_cover_its_address_is_named_in_the_log(env):
    """Node 3's peer URL is an address its certificate does not name, so
    the leader's handshakes with it fail verification. No retry can mend
    that: the leader says so in its log, once (not once a retry), and the
    other two go on as a quorum."""
    nodes = [env.new_node() for _ in range(3)]
    for i, x in enumerate(nodes):
        host = "127.0.0.1" if i < 2 else "127.0.0.60"  # gen-certs names 127.0.0.1-50
        x.peer_url = "https://%s:%d" % (host, x.peer_port)
    extra = [] if harness.TLS else harness.tls_flags()
    n1, n2, n3 = nodes
    for x in (n1, n2):  # a leader first, so node 3 only ever follows
        x.start([x.peer_url for x in nodes], extra=extra)
    wait_for(lambda: _curl(n1, "PUT", "/k", data="v")[0] == 204, harness.START_TIMEOUT,
             "nodes 1 and 2 to take writes")
    n3.start([x.peer_url for x in nodes], extra=extra)
    leader = {1: n1, 2: n2}[json.loads(_curl(n1, "GET", "/status")[1])["leader"]]
    said = "TLS with peer 3 failed"
    wait_for(lambda: said in leader.log_text(), 30, "%s to name peer 3's handshake" % leader)
    for i in range(20):
        check(_curl(n1, "PUT", "/k", data=str(i))[0] == 204, "write %d without node 3" % i)
    lines = [l for l in leader.log_text().splitlines() if said in l]
    check(len(lines) == 1, "%s named it %d times: %r" % (leader, len(lines), lines))
    check(" WARN " in lines[0] and "127.0.0.60" in lines[0], "the warning: %r" % lines[0])
