"""Users, roles and key permissions (docs/SECURITY.md, "Users and roles"):
with auth enabled, a request without credentials gets 401 and one outside
its roles' keys 403 — for get, put, delete, txn (one forbidden op forbids
the whole txn), watch, a lease attached to a key, lock, members, compact;
tokens from /auth/authenticate and HTTP Basic work on every node; revoking
a role or changing a password takes effect on every node at once; enabling
auth without root is refused; auth survives a restart and a snapshot
install; wrong passwords are rate-limited per address; a client
certificate's CN names the user.
"""

import base64
import http.client
import json
import subprocess

import harness
from harness import cert, check, wait_for

ROOT_PW = "root-pass"
ALICE_PW = "alice-pass"


def _basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()}


def _bearer(token):
    return {"Authorization": "Bearer " + token}


def _req(node, method, path, body=None, headers=None, timeout=harness.HTTP_TIMEOUT):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return node.request(method, path, body, headers, timeout=timeout)


def _ok(r, what, status=200):
    check(r.status == status, "%s: expected %d, got %r" % (what, status, r))
    return r


def _setup(node):
    """root (role root), alice (role app: readwrite on prefix app/, read on
    key shared), a key outside alice's reach; then auth on."""
    root = _basic("root", ROOT_PW)
    r = _req(node, "POST", "/auth/enable")
    check(r.status == 400 and r.json()["reason"] == "root_required",
          "enable without root must be refused: %r" % r)
    _ok(_req(node, "POST", "/auth/users", {"name": "root", "password": ROOT_PW}), "add root")
    _ok(_req(node, "POST", "/auth/roles", {"name": "root"}), "add role root")
    r = _req(node, "POST", "/auth/enable")
    check(r.status == 400 and r.json()["reason"] == "root_required",
          "enable with root lacking role root must be refused: %r" % r)
    _ok(_req(node, "POST", "/auth/users/root/roles", {"role": "root"}), "grant root")
    _ok(_req(node, "POST", "/auth/users", {"name": "alice", "password": ALICE_PW}), "add alice")
    _ok(_req(node, "POST", "/auth/roles", {"name": "app"}), "add role app")
    _ok(_req(node, "POST", "/auth/roles/app/permissions",
             {"key": "app/", "prefix": True, "perm": "readwrite"}), "grant app/")
    _ok(_req(node, "POST", "/auth/roles/app/permissions",
             {"key": "shared", "perm": "read"}), "grant shared")
    _ok(_req(node, "POST", "/auth/users/alice/roles", {"role": "app"}), "alice gets app")
    _ok(_req(node, "PUT", "/kv/secret", "s"), "put secret")
    _ok(_req(node, "PUT", "/kv/shared", "x"), "put shared")
    _ok(_req(node, "POST", "/auth/enable"), "enable")
    # each member turns auth on when it applies the enable (writes and
    # reads are checked against the log, so none slips through before)
    for n in node.env.nodes:
        if n.alive():
            wait_for(lambda: _req(n, "GET", "/status").status == 401, 10, "%s to apply enable" % n)
    return root


def _token(node, user, pw):
    r = _ok(_req(node, "POST", "/auth/authenticate", {"name": user, "password": pw}),
            "authenticate %s on %s" % (user, node))
    return r.json()["token"]


def _denied(r, what):
    check(r.status == 403 and r.json()["reason"] == "permission_denied",
          "%s: expected 403 permission_denied, got %r" % (what, r))


def test_auth_checks_every_route(env):
    nodes = env.cluster(3)
    leader = env.leader()
    root = _setup(leader)
    # no credentials: 401 everywhere but the public routes
    for n in nodes:
        for method, path in [("GET", "/kv/app/x"), ("PUT", "/kv/app/x"), ("GET", "/members"),
                             ("GET", "/status"), ("GET", "/app/x"), ("GET", "/auth/users")]:
            r = _req(n, method, path, "v" if method == "PUT" else None)
            check(r.status == 401 and r.json()["reason"] == "unauthenticated",
                  "%s %s on %s without credentials: %r" % (method, path, n, r))
        _ok(_req(n, "GET", "/health"), "health stays open")
    check(_req(leader, "GET", "/kv/app/x", headers=_bearer("x.1.2." + "0" * 64)).status == 401,
          "a forged token is refused")
    check(_req(leader, "GET", "/kv/app/x", headers=_basic("alice", "wrong")).status == 401,
          "a wrong password is refused")
    tok = _token(nodes[0], "alice", ALICE_PW)
    alice = _bearer(tok)
    # a token made on one node works on every node
    for i, n in enumerate(nodes):
        _ok(_req(n, "PUT", "/kv/app/k%d" % i, "v", alice), "alice put on %s" % n)
        _ok(_req(n, "GET", "/kv/app/k%d" % i, headers=alice), "alice get on %s" % n)
        _ok(_req(n, "GET", "/kv/shared", headers=alice), "alice reads shared on %s" % n)
        _ok(_req(n, "GET", "/app/k%d" % i, headers=_basic("alice", ALICE_PW)),
            "raftexample GET with Basic on %s" % n)
    # outside her roles: 403 for each kind of request, and nothing written
    f = nodes[1]
    _denied(_req(f, "GET", "/kv/secret", headers=alice), "get")
    _denied(_req(f, "GET", "/kv/app/?prefix=false&range_end=b", headers=alice), "range past app/")
    _denied(_req(f, "PUT", "/kv/secret", "x", alice), "put")
    _denied(_req(f, "PUT", "/kv/shared", "x", alice), "put on a read-only key")
    _denied(_req(f, "DELETE", "/kv/secret", headers=alice), "delete")
    _denied(_req(f, "PUT", "/secret", "x", alice), "raftexample PUT")
    txn = {"success": [{"request_put": {"key": "app/t", "value": "1"}},
                       {"request_put": {"key": "secret", "value": "2"}}]}
    _denied(_req(f, "POST", "/txn", txn, alice), "txn with one forbidden op")
    _ok(_req(f, "GET", "/kv/app/t", headers=root), "the txn wrote nothing", 404)
    _denied(_req(f, "GET", "/watch/secret?timeout=1", headers=alice), "watch")
    lease = _ok(_req(f, "POST", "/lease", {"ttl": 60}, alice), "alice grants a lease").json()["id"]
    _denied(_req(f, "PUT", "/kv/secret?lease=%d" % lease, "x", alice), "lease attach")
    _ok(_req(f, "PUT", "/kv/app/leased?lease=%d" % lease, "x", alice), "lease on her key")
    _denied(_req(f, "POST", "/lock/secret", {"lease": lease}, alice), "lock")
    _denied(_req(f, "POST", "/members", {"peer_url": "http://127.0.0.1:1"}, alice), "members")
    _denied(_req(f, "DELETE", "/3", headers=alice), "raftexample member removal")
    _denied(_req(f, "POST", "/compact", {"revision": 2}, alice), "compact")
    _denied(_req(f, "GET", "/auth/users", headers=alice), "auth listing")
    _denied(_req(f, "GET", "/maintenance/alarms", headers=alice), "maintenance")
    r = _ok(_req(f, "GET", "/kv/secret?raw=true", headers=root), "root reads secret")
    check(r.body == b"s", "nothing alice tried changed secret: %r" % r)
    # root sees users and roles, never a hash
    users = _ok(_req(f, "GET", "/auth/users", headers=root), "list users").json()["users"]
    check(users == [{"name": "alice", "roles": ["app"]}, {"name": "root", "roles": ["root"]}],
          "users: %r" % users)
    check(b"$y$" not in _req(f, "GET", "/auth/users/alice", headers=root).body, "no hash shown")
    role = _ok(_req(f, "GET", "/auth/roles/app", headers=root), "get role").json()
    check(role["permissions"] == [{"key": "app/", "range_end": "app0", "perm": "readwrite"},
                                  {"key": "shared", "perm": "read"}], "role: %r" % role)


def test_revocation_and_password_change_apply_at_once(env):
    nodes = env.cluster(3)
    leader = env.leader()
    root = _setup(leader)
    tokens = [_bearer(_token(n, "alice", ALICE_PW)) for n in nodes]
    for n, t in zip(nodes, tokens):
        _ok(_req(n, "PUT", "/kv/app/a", "1", t), "before the revoke on %s" % n)
    _ok(_req(nodes[2], "DELETE", "/auth/roles/app/permissions", {"key": "app/", "prefix": True},
             root), "revoke app/ on the last node")
    # the very next request on every node, reads and writes alike
    for n, t in zip(nodes, tokens):
        _denied(_req(n, "PUT", "/kv/app/a", "2", t), "put after the revoke on %s" % n)
        _denied(_req(n, "GET", "/kv/app/a", headers=t), "get after the revoke on %s" % n)
    _ok(_req(nodes[0], "POST", "/auth/roles/app/permissions",
             {"key": "app/", "prefix": True, "perm": "readwrite"}, root), "grant back")
    _ok(_req(nodes[1], "POST", "/auth/users/alice/password", {"password": "new-pass"}, root),
        "password change")
    for n, t in zip(nodes, tokens):
        r = _req(n, "PUT", "/kv/app/a", "3", t)
        check(r.status == 401, "old token after a password change on %s: %r" % (n, r))
        r = _req(n, "GET", "/kv/app/a", headers=t)
        check(r.status == 401, "old token read after a password change on %s: %r" % (n, r))
        check(_req(n, "GET", "/kv/app/a", headers=_basic("alice", ALICE_PW)).status == 401,
              "old password on %s" % n)
        _ok(_req(n, "PUT", "/kv/app/a", "4", _basic("alice", "new-pass")), "new password on %s" % n)
    # role removed from the user: her new token stops too
    t = _bearer(_token(nodes[0], "alice", "new-pass"))
    _ok(_req(nodes[0], "DELETE", "/auth/users/alice/roles/app", headers=root), "revoke role")
    for n in nodes:
        check(_req(n, "GET", "/kv/app/a", headers=t).status == 401, "token after role loss %s" % n)
        _denied(_req(n, "GET", "/kv/app/a", headers=_basic("alice", "new-pass")),
                "alice without roles on %s" % n)
    # root stays while auth is on; disable brings open access back
    r = _req(nodes[0], "DELETE", "/auth/users/root", headers=root)
    check(r.status == 400, "deleting root while auth is on: %r" % r)
    _ok(_req(nodes[0], "POST", "/auth/disable", headers=root), "disable")
    # A request without credentials meets the member's own auth state before
    # any read barrier, so a member that has not yet applied the disable
    # (1-2 ms behind) still answers 401: wait for each.
    for n in nodes:
        wait_for(lambda n=n: _req(n, "GET", "/kv/app/a").status == 200,
                 what="open access again on %s" % n)


def test_auth_survives_restart_and_snapshot_install(env):
    nodes = env.cluster(3, extra=["--snapshot-count", "20"])
    leader = env.leader()
    _setup(leader)
    lagger = next(n for n in nodes if n is not leader)
    lagger.stop()
    alice = _basic("alice", ALICE_PW)
    live = [n for n in nodes if n is not lagger]
    # enough writes that the lagger can only catch up from a snapshot
    for i in range(60):
        _ok(_req(live[i % 2], "PUT", "/kv/app/s%d" % i, "v", alice), "write %d" % i)
    lagger.start()
    wait_for(lagger.healthy, harness.START_TIMEOUT, "%s back" % lagger)
    wait_for(lambda: _req(lagger, "GET", "/kv/app/s59?serializable=true",
                          headers=alice).status == 200, harness.START_TIMEOUT,
             "the lagger to install the snapshot")
    check("snapshot" in lagger.log_text().lower(), "the lagger caught up from a snapshot")
    _denied(_req(lagger, "GET", "/kv/secret?serializable=true", headers=alice), "after install")
    check(_req(lagger, "GET", "/kv/app/s1?serializable=true").status == 401, "still on")
    for n in nodes:
        n.stop()
    for n in nodes:
        n.start()
    env.wait_healthy()
    for n in nodes:
        _ok(_req(n, "GET", "/kv/app/s1", headers=alice), "alice after restart on %s" % n)
        _denied(_req(n, "GET", "/kv/secret", headers=alice), "after restart on %s" % n)
        check(_req(n, "GET", "/kv/app/s1").status == 401, "auth still on after restart")


def test_failed_logins_are_rate_limited_per_address(env):
    (n,) = env.cluster(1)
    _setup(n)
    codes = []
    for _ in range(12):
        if harness.TLS:
            conn = http.client.HTTPSConnection("127.0.0.1", n.port, timeout=10,
                                               source_address=("127.0.0.5", 0),
                                               context=harness.client_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", n.port, timeout=10,
                                              source_address=("127.0.0.5", 0))
        try:
            h = _basic("alice", "guess")
            conn.request("GET", "/kv/app/x", headers=h)
            codes.append(conn.getresponse().status)
        finally:
            conn.close()
    check(codes[:10] == [401] * 10 and codes[10:] == [429, 429],
          "ten wrong passwords, then 429: %r" % codes)
    # another address is not affected, nor a right password from it
    _ok(_req(n, "GET", "/kv/shared", headers=_basic("alice", ALICE_PW)), "other address")
    r = _req(n, "POST", "/auth/authenticate", {"name": "alice", "password": "nope"})
    check(r.status == 401, "authenticate with a wrong password: %r" % r)
    r = _req(n, "POST", "/auth/users", {"name": "bad:name", "password": "x"},
             _basic("root", ROOT_PW))
    check(r.status == 400 and "name" in r.json()["error"], "a bad name is a 400: %r" % r)
    r = _req(n, "POST", "/auth/users", {"name": "bob", "password": "x", "admin": True},
             _basic("root", ROOT_PW))
    check(r.status == 400, "an unknown field is a 400: %r" % r)
    check(ROOT_PW not in n.log_text() and ALICE_PW not in n.log_text(), "no password logged")


def test_client_certificate_names_the_user(env):
    nodes = [env.new_node() for _ in range(1)]
    nodes[0].peer_url = "https://127.0.0.1:%d" % nodes[0].peer_port
    extra = [] if harness.TLS else harness.tls_flags()
    nodes[0].start([nodes[0].peer_url], extra=extra + ["--client-cert-auth"])
    n = nodes[0]

    def curl(method, path, data=None, client="root", user=None):
        cmd = ["curl", "-sS", "--max-time", "10", "--cacert", cert("ca.pem"), "-X", method,
               "--cert", cert("client-%s.pem" % client),
               "--key", cert("client-%s-key.pem" % client), "-o", "-", "-w", "\n%{http_code}"]
        if data is not None:
            cmd += ["--data-binary", data]
        if user:
            cmd += ["-u", user]
        cmd.append("https://127.0.0.1:%d%s" % (n.port, path))
        out = subprocess.run(cmd, capture_output=True, timeout=30)
        body, _, code = out.stdout.rpartition(b"\n")
        return int(code or 0), body

    wait_for(lambda: curl("GET", "/health")[0] == 200, harness.START_TIMEOUT, "TLS node up")
    for method, path, body in [
            ("POST", "/auth/users", {"name": "root", "password": ROOT_PW}),
            ("POST", "/auth/roles", {"name": "root"}),
            ("POST", "/auth/users/root/roles", {"role": "root"}),
            ("POST", "/auth/users", {"name": "alice", "password": ALICE_PW}),
            ("POST", "/auth/roles", {"name": "app"}),
            ("POST", "/auth/roles/app/permissions", {"key": "app/", "prefix": True,
                                                     "perm": "readwrite"}),
            ("POST", "/auth/users/alice/roles", {"role": "app"}),
            ("POST", "/auth/enable", None)]:
        st, out = curl(method, path, json.dumps(body) if body else None)
        check(st == 200, "%s %s: %s %s" % (method, path, st, out))
    # the certificate's CN is the user: no password needed
    check(curl("PUT", "/kv/app/x", "1", client="alice")[0] == 200, "alice by certificate")
    check(curl("PUT", "/kv/other", "1", client="alice")[0] == 403, "alice outside app/")
    check(curl("PUT", "/kv/other", "1", client="root")[0] == 200, "root by certificate")
    # an explicit credential wins over the certificate
    check(curl("PUT", "/kv/other", "1", client="root", user="alice:" + ALICE_PW)[0] == 403,
          "Basic alice over root's certificate")
    # The store failing to read the user (failpoint auth.user) is the
    # server's fault, not the client's: 500 and nothing written, while the
    # node goes on; once it can read again, the certificate works as before.
    def restart(spec):
        n.restart_with_failpoints(spec)
        wait_for(lambda: curl("GET", "/health")[0] == 200, harness.START_TIMEOUT, "TLS node up")

    restart("auth.user=EIO")
    for client, user in [("alice", None), ("alice", "alice:" + ALICE_PW), ("root", None)]:
        st, out = curl("PUT", "/kv/app/x", "2", client=client, user=user)
        check(st == 500 and json.loads(out)["reason"] == "internal",
              "PUT as %s, the user unreadable: %s %s" % (user or client, st, out))
    check(curl("GET", "/health")[0] == 200, "the node goes on")
    restart("")
    check(curl("GET", "/kv/app/x?raw=true", client="alice") == (200, b"1"), "nothing written")
    check(curl("PUT", "/kv/app/x", "2", client="alice")[0] == 200, "alice by certificate again")


def test_writes_from_before_enable_are_checked_at_apply(env):
    """A member that has not applied the enable yet still wraps its writes
    (as nobody): apply, past the enable in the log, refuses them."""
    nodes = env.cluster(3)
    leader = env.leader()
    f = next(n for n in nodes if n is not leader)
    for method, path, body in [("POST", "/auth/users", {"name": "root", "password": ROOT_PW}),
                               ("POST", "/auth/users/root/roles", {"role": "root"})]:
        _ok(_req(leader, method, path, body), path)
    # a flood of anonymous writes through a follower, racing the enable
    import threading
    codes, stop = [], threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            codes.append((i, _req(f, "PUT", "/kv/race/%d" % i, "x").status))
            i += 1
    t = threading.Thread(target=writer)
    t.start()
    wait_for(lambda: len(codes) >= 20, 30, "writes before the enable")
    _ok(_req(leader, "POST", "/auth/enable"), "enable")
    after = len(codes)
    wait_for(lambda: len(codes) >= after + 20, 30, "writes after the enable")
    stop.set()
    t.join(60)
    root = _basic("root", ROOT_PW)
    r = _ok(_req(leader, "GET", "/kv/race/?prefix=true&keys_only=true", headers=root), "list")
    stored = {kv["key"] for kv in r.json()["kvs"]}
    acked = {"race/%d" % i for i, st in codes if st == 200}
    refused = [i for i, st in codes if st == 401]
    check(acked == stored, "stored keys are exactly the acknowledged ones (%d vs %d)"
          % (len(stored), len(acked)))
    check(all(st in (200, 401) for _, st in codes), "only 200 or 401: %r" % codes[:10])
    check(refused and refused[-1] == codes[-1][0], "the writes after the enable were refused: %r"
          % refused[-5:])
