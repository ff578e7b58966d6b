"""The command line contract (README.md, Command line): --help, bad flags and a
clean SIGTERM. Must not depend on a cluster forming except for SIGTERM."""

import os
import re
import subprocess

import harness
from harness import check


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
