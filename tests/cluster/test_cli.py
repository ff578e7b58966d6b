"""The command line contract (README.md, Command line): --help, bad flags and a
clean SIGTERM. Must not depend on a cluster forming except for SIGTERM."""

import os
import re
import subprocess

import harness
from harness import check, wait_for


def _run(args, env):
    return subprocess.run([harness.binary()] + args, cwd=env.dir, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=20)


def test_help_prints_usage_and_exits_0(env):
    r = _run(["--help"], env)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    check(r.returncode == 0, "--help exit code %d" % r.returncode)
    for flag in ("--id", "--cluster", "--port", "--join", "--data-dir", "--snapshot-count",
                 "--heartbeat-ms", "--election-ms", "--max-request-bytes", "--log-level"):
        check(flag in out, "--help does not mention %s" % flag)


def test_man_page_describes_every_flag(env):
    """docs/raftkv.1 is written by hand: every flag --help prints must be
    in it (troff writes a dash as \\-)."""
    r = _run(["--help"], env)
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", r.stdout.decode()))
    check(len(flags) > 10, "found only %s in --help" % sorted(flags))
    with open(os.path.join(harness.TOP, "docs", "raftkv.1")) as f:
        page = f.read().replace("\\-", "-")
    missing = sorted(f for f in flags if f not in page)
    check(not missing, "docs/raftkv.1 does not describe %s" % missing)


def test_bad_flags_exit_nonzero_with_message(env):
    port = harness.free_port()
    base = ["--id", "1", "--cluster", "http://127.0.0.1:%d" % harness.free_port(),
            "--port", str(port)]
    cases = [["--no-such-flag"] + base,
             ["--id", "x", "--cluster", base[3], "--port", str(port)],
             ["--id", "2"] + base[2:],                      # id past the list
             base[:-2] + ["--port", "99999"],
             base + ["--log-level", "loud"]]
    for args in cases:
        r = _run(args, env)
        check(r.returncode != 0, "%s exited 0" % " ".join(args))
        check(r.stderr.strip() != b"", "%s printed no message on stderr" % " ".join(args))


def test_sigterm_exits_cleanly(env):
    (n,) = env.cluster(1)
    check(n.put("k", "v") == 204, "PUT before shutdown")
    code = n.stop()
    check(code == 0, "SIGTERM exit code %d, want 0" % code)
    n.restart()
    env.wait_healthy([n])
    check(n.get("k") == (200, b"v"), "value survives a clean restart")


def test_environment_configures_a_node(env):
    """Every flag as RAFTKV_<FLAG> (what /etc/default/raftkv sets for the
    systemd unit): a node configured by its environment alone, but for one
    flag that wins over its variable."""
    n = env.new_node()
    flags = harness.tls_flags() if harness.TLS else []
    n.env_vars = {"RAFTKV_ID": str(n.id), "RAFTKV_CLUSTER": n.peer_url,
                  "RAFTKV_PORT": "1",  # overridden by --port below
                  "RAFTKV_DATA_DIR": n.data_dir, "RAFTKV_SNAPSHOT_COUNT": "5"}
    for flag, value in zip(flags[0::2], flags[1::2]):
        n.env_vars["RAFTKV_" + flag[2:].upper().replace("-", "_")] = value
    n.args = ["--port", str(n.port)]
    n.start()
    env.wait_healthy([n])
    # writes stop as soon as 5 entries are applied: the snapshot's copy of
    # kv.db starts on that turn and finishes in the background, and this
    # one-member node has no later Ready to adopt it on (its ticks must)
    writes = 0
    while n.status()["raft_applied_index"] < 5:
        check(n.put("k%d" % writes, "v") == 204, "PUT %d" % writes)
        writes += 1
        check(writes <= 5, "5 writes apply 5 entries: %r" % n.status())
    check(n.get("k0") == (200, b"v"), "GET")
    check(os.path.isdir(n.data_dir), "RAFTKV_DATA_DIR was used")
    wait_for(lambda: "snapshot at index" in n.log_text(), what="RAFTKV_SNAPSHOT_COUNT=5 to "
             "take effect: an idle node adopts its snapshot")
    r = _run([], env)  # nothing on the command line, nothing in the environment
    check(r.returncode == 2 and b"--id" in r.stderr, "unconfigured: %r" % (r,))
