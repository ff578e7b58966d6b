"""cases: the one runner of test_checkers.py and test_e2e.py — calls every
test_* function of a module, prints PASS/FAIL per case and, last,
"N passed, N failed" (the lines ci.py counts). Must never stop at the
first failure: every case runs.

usage from a test module: sys.exit(cases.main(globals()))
"""

import os
import sys
import traceback


def main(namespace, argv=None):
    """Runs namespace's test_* functions in order; returns the exit code.
    `--bin PATH` sets RAFTKV_BIN for the cases that start nodes."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--bin"] and len(args) > 1:
        os.environ["RAFTKV_BIN"] = os.path.abspath(args[1])
    cases = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in cases:
        try:
            fn()
            passed += 1
            print("PASS %s" % name, flush=True)
        except Exception:  # every failure, assertion or crash
            failed += 1
            print("FAIL %s" % name, flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0
