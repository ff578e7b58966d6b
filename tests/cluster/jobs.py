"""jobs: runs the cluster tests N at a time for run.py --jobs, each in its
own `run.py --one NAME` process (its own ports, temp dir, nodes and
atexit net, as a serial run gives it). A test its module names in SERIAL
(a time bound a busy machine could break: floods, TTLs kept alive, a
latency) runs alone, after the others. Each test's output is relayed
whole when it ends, so the lines of two tests never interleave.

Must never count a test as passed unless its process printed PASS and
exited 0, and never leave a test process behind: SIGTERM to the runner
reaches every child, which stops its nodes before exiting.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

import harness

RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py")
SUMMARY = re.compile(r"^[0-9]+ passed, [0-9]+ failed$")
POLL_S = 0.05
# past the child's own budget (run.py's SIGALRM): time for its cleanup
GRACE_S = 90


class Child:
    """One test in its own process, its output kept in a temp file."""

    def __init__(self, name, budget, verbose):
        self.name = name
        self.deadline = time.monotonic() + budget + GRACE_S
        self.out = tempfile.TemporaryFile()
        cmd = [sys.executable, RUN, "--one", name] + (["-v"] if verbose else [])
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT)

    def overdue(self):
        return time.monotonic() > self.deadline

    def stop(self):
        """SIGTERM unwinds the child like Ctrl-C (its finally blocks stop
        the nodes); SIGKILL if it does not end in time."""
        harness.terminate(self.proc, 60)

    def finish(self):
        """Relays the child's output and prints one verdict line; returns
        True if the test passed."""
        self.out.seek(0)
        text = self.out.read().decode("utf-8", "replace")
        self.out.close()
        verdict = None
        for line in text.splitlines():
            if line.startswith(("PASS ", "FAIL ")) and verdict is None:
                verdict = line
            elif not SUMMARY.match(line):
                print(line)
        rc = self.proc.returncode
        if verdict == "PASS %s" % self.name and rc == 0:
            print(verdict, flush=True)
            return True
        if verdict is None or verdict.startswith("PASS "):
            verdict = "FAIL %s (its test process exited with code %s%s)" % (
                self.name, rc, "" if verdict else " and no verdict")
        print(verdict, flush=True)
        return False


def _certs_for_children():
    """Over TLS, one throwaway CA for the whole run instead of one per test
    process; harness removes it when the runner exits."""
    if harness.TLS:
        os.environ["RAFTKV_TEST_CERTS"] = harness.certs()


def run_all(tests, jobs, budget, verbose):
    """tests: (name, serial) in order. Returns (passed, failed)."""
    _certs_for_children()
    parallel = [name for name, serial in tests if not serial]
    alone = [name for name, serial in tests if serial]
    running = []
    passed = failed = 0
    try:
        while parallel or alone or running:
            while parallel and len(running) < jobs:
                running.append(Child(parallel.pop(0), budget, verbose))
            if not parallel and not running and alone:
                running.append(Child(alone.pop(0), budget, verbose))
            time.sleep(POLL_S)  # a poll of the children, not a wait in place of one
            for c in list(running):
                if c.proc.poll() is None and c.overdue():
                    c.stop()
                if c.proc.poll() is not None:
                    running.remove(c)
                    if c.finish():
                        passed += 1
                    else:
                        failed += 1
    finally:
        for c in running:
            c.stop()
    return passed, failed

