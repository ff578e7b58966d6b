#!/usr/bin/env python3
"""run: the cluster test runner. Finds test_* functions in tests/cluster/
test_*.py (in file and definition order), runs each in its own Env (fresh
ports, fresh temp dir, its own nodes), prints PASS/FAIL per test and, last,
"N passed, N failed". With --jobs N, N tests run at once, each in its own
process (jobs.py); a test its module names in SERIAL runs alone. Must
never leave a node running: every Env is cleaned up in a finally, and
harness.py kills leftovers at exit.

usage: run.py [-k SUBSTRING]... [--bin PATH] [--list] [--jobs N] [--one NAME]
"""

import argparse
import importlib
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import jobs  # noqa: E402


def discover(patterns, exact=None):
    """(name, fn, serial) of every test matching, in file and definition
    order. A module's SERIAL is the set of its tests that must run alone,
    or True for all of them."""
    tests = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        mod = importlib.import_module(fname[:-3])
        serial = getattr(mod, "SERIAL", ())
        for name, fn in vars(mod).items():
            if not (name.startswith("test_") and callable(fn)):
                continue
            if exact is not None and name != exact:
                continue
            if not patterns or any(p in name for p in patterns):
                tests.append((name, fn, serial is True or name in serial))
    return tests


def reason_of(exc):
    if isinstance(exc, harness.TestFailure):
        return str(exc)
    return "%s: %s" % (type(exc).__name__, exc)


TEST_BUDGET = int(os.environ.get("RAFTKV_TEST_TIMEOUT", "180"))


class TestTimeout(BaseException):
    """BaseException, so a test's own `except Exception` cannot swallow it."""


def _on_alarm(signum, frame):
    raise TestTimeout("test took longer than %ds (RAFTKV_TEST_TIMEOUT)" % TEST_BUDGET)


def run_one(name, fn, verbose):
    """Runs one test; returns None on success, else the reason. A test past
    its time budget is interrupted by SIGALRM, so its cleanup still runs."""
    env = harness.Env(name)
    reason = None
    started = time.monotonic()
    try:
        signal.alarm(TEST_BUDGET)
        fn(env)
    except (Exception, TestTimeout) as e:  # every failure, not only assertions
        reason = reason_of(e)
        if verbose or not isinstance(e, harness.TestFailure):
            traceback.print_exc()
    finally:
        signal.alarm(0)
        env.stop_all()
        # After the nodes exited: LeakSanitizer reports at exit.
        bad = env.sanitizer_reports()
        if bad and reason is None:
            reason = "sanitizer report in " + ", ".join(bad)
        if reason is not None:
            print("  kept %s; node logs:\n%s" % (env.dir, env.log_tails()), flush=True)
        env.cleanup(keep=reason is not None)
    if verbose:
        print("  (%s took %.1fs)" % (name, time.monotonic() - started))
    return reason


def run_in_turn(tests, verbose):
    """Runs the tests one after another in this process."""
    passed = failed = 0
    for name, fn, _ in tests:
        reason = run_one(name, fn, verbose)
        if reason is None:
            passed += 1
            print("PASS %s" % name, flush=True)
        else:
            failed += 1
            print("FAIL %s (%s)" % (name, reason.splitlines()[0] if reason else "?"),
                  flush=True)
    return passed, failed


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description="raftkv real-process cluster tests")
    ap.add_argument("-k", action="append", default=[], metavar="SUBSTRING",
                    help="run only tests whose name contains SUBSTRING (repeatable)")
    ap.add_argument("--bin", help="raftkv binary (default $RAFTKV_BIN or build/raftkv)")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("RAFTKV_TEST_JOBS", "1")),
                    help="tests at once, each in its own process (default $RAFTKV_TEST_JOBS or 1)")
    ap.add_argument("--one", metavar="NAME", help="run the one test of exactly this name")
    args = ap.parse_args()
    if args.bin:
        os.environ["RAFTKV_BIN"] = os.path.abspath(args.bin)
    tests = discover(args.k, args.one)
    if args.list:
        for name, _, serial in tests:
            print(name + ("  (alone)" if serial else ""))
        return 0
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so finally blocks
    # stop the nodes.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGALRM, _on_alarm)
    if not os.access(harness.binary(), os.X_OK):
        print("warning: %s is not an executable" % harness.binary(), flush=True)
    suite_start = time.monotonic()
    if args.jobs > 1 and args.one is None:
        passed, failed = jobs.run_all([(name, serial) for name, _, serial in tests],
                                      args.jobs, TEST_BUDGET, args.verbose)
    else:
        passed, failed = run_in_turn(tests, args.verbose)
    if args.verbose:
        print("  (suite took %.0fs)" % (time.monotonic() - suite_start))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed or not tests else 0


if __name__ == "__main__":
    sys.exit(main())
