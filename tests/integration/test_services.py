#!/usr/bin/env python3
"""test_services.py -- the three services against a real FerretDB, as real processes over real HTTP.

    python3 tests/integration/test_services.py [--flavour rel|asan] [-k substring]

Each test starts the services it needs (tests/py/harness.py) on free ports
with its own database name in one shared FerretDB (tests that stop the
database get their own). Every service is stopped with SIGTERM at the end of
its test and must exit 0 with no sanitizer report. Ends with the line
"<flavour>: N passed, N failed, N skipped".
"""
import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import svctest  # noqa: E402
from svctest import Ctx, Skip, TESTS, harness, shutil, tempfile  # noqa: E402,F401
# The tests, one file per room of common/svc (and make run's), in the order they run.
import test_core  # noqa: E402,F401
import test_http  # noqa: E402,F401
import test_lab  # noqa: E402,F401
import test_retry  # noqa: E402,F401
import test_shed  # noqa: E402,F401
import test_hedge  # noqa: E402,F401
import test_prometheus  # noqa: E402,F401
import test_cluster  # noqa: E402,F401
import test_run  # noqa: E402,F401
import test_tracing  # noqa: E402,F401



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flavour", default="rel")
    ap.add_argument("-k", action="append", default=[],
                    help="run only the tests whose name holds this (repeatable: any of them)")
    args = ap.parse_args()
    passed = failed = skipped = 0
    tmp = Path(tempfile.mkdtemp(prefix="svc-db-"))
    shared = None
    try:
        if not harness.DBTOOL.exists():
            raise Skip(f"{harness.DBTOOL} is not built")
        shared = harness.FerretDB(tmp, tmp / "data").start()
    except Skip as e:
        print(f"SKIP: every integration test: {e}", flush=True)
        print(f"{args.flavour}: 0 passed, 0 failed, {len(TESTS)} skipped")
        return 0
    try:
        for fn in TESTS:
            if args.k and not any(k in fn.__name__ for k in args.k):
                continue
            ctx = Ctx(args.flavour, shared, fn.__name__)
            start = time.monotonic()
            outcome, detail = "PASS", ""
            try:
                fn(ctx)
            except Skip as e:
                outcome, detail = "SKIP", str(e)
            except Exception:
                outcome, detail = "FAIL", traceback.format_exc()
            problems = ctx.close()
            if problems and outcome != "SKIP":
                outcome, detail = "FAIL", detail + "\n".join(problems)
            took = time.monotonic() - start
            print(f"{outcome} [{args.flavour}] {fn.__name__} ({took:.1f}s)", flush=True)
            if outcome == "FAIL":
                failed += 1
                print("    " + detail.replace("\n", "\n    "), flush=True)
                print(f"    logs: {ctx.logs}", flush=True)
            elif outcome == "SKIP":
                skipped += 1
                print(f"SKIP: {detail}", flush=True)
            else:
                passed += 1
    finally:
        shared.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.flavour}: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
