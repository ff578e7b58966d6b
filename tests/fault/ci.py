#!/usr/bin/env python3
"""ci: the fault-injection schedule scripts/test runs — the checkers' unit
proofs, the end-to-end proofs, SEEDS runs of SECONDS each (the last with
TLS on both ports; 3 nodes,
kill,pause,partition, every workload: register, set, watch, lock, lease,
append, counter — all required; they share each run's window, so the schedule stays
3 x 60 s), then one 30 s run of the corrupt and kill nemeses (register, set).
Prints PASS/FAIL per item and, last, "N passed, N failed"; exit code 1 if
anything failed.
Must never: count a run that was not fully checked (exit code 2, e.g. no
iptables) as passed.

usage: ci.py [--bin PATH] [--seeds 1,2,3] [--time 60] [--nemesis ...] [--workload ...]
"""

import argparse
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(label, cmd, env=None):
    """Runs one child, echoing its output; returns (passed, failed)."""
    print("---- %s" % label, flush=True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        data, _ = p.communicate()
    except KeyboardInterrupt:
        # SIGTERM, not SIGKILL: the child must stop its nodes and firewall.
        p.terminate()
        p.communicate(timeout=60)
        raise
    out = data.decode("utf-8", "replace")
    sys.stdout.write(out)
    sys.stdout.flush()
    return out, p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--time", default="60")
    ap.add_argument("--nemesis", default="kill,pause,partition")
    ap.add_argument("--workload", default="register,set,watch,lock,lease,append,counter")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    binargs = ["--bin", a.bin] if a.bin else []
    py = sys.executable
    passed = failed = 0
    for script in ("test_checkers.py", "test_e2e.py"):
        out, rc = run(script, [py, os.path.join(HERE, script)] + binargs)
        p = sum(1 for line in out.splitlines() if line.startswith("PASS "))
        f = sum(1 for line in out.splitlines() if line.startswith("FAIL "))
        if rc != 0 and f == 0:
            f = 1
            print("FAIL %s (exit code %d)" % (script, rc))
        passed, failed = passed + p, failed + f
    # the seeds of the default schedule, then one corruption run
    runs = [(seed, a.time, a.nemesis, a.workload) for seed in a.seeds.split(",")]
    last_seed = runs[-1][0]
    runs.append(("11", "30", "corrupt,kill", "register,set"))
    for seed, secs, nemesis, workload in runs:
        # the last seed of the schedule runs with TLS on both ports
        tls = seed == last_seed
        name = "jepsen seed %s, %ss, %s%s" % (seed, secs, nemesis, ", TLS" if tls else "")
        out, rc = run(name, [py, os.path.join(HERE, "runner.py"), "--time", secs,
                             "--seed", seed, "--nodes", "3", "--nemesis", nemesis,
                             "--workload", workload] + binargs,
                      dict(os.environ, RAFTKV_TEST_TLS="1" if tls else "0"))
        last = out.strip().splitlines()[-1] if out.strip() else "no output"
        if rc == 0:
            passed += 1
            print("PASS %s" % name)
        else:
            failed += 1
            print("FAIL %s (%s)" % (name, last))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
