#!/usr/bin/env python3
"""summarize.py -- sums the test counts of each suite log in build/results.

Reads the plain lines "N passed, N failed[, N skipped]" and cmocka's
"[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)" lines, prints one line per
suite and a final "N passed, N failed, N skipped". A suite that exited non-zero
but reported no failed test counts as one failure, so a crash is never hidden.
"""
import re
import sys
from pathlib import Path

PLAIN = re.compile(r"^(?:\w+: )?(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$")
CM_PASS = re.compile(r"^\[  PASSED  \] (\d+) test")
CM_FAIL = re.compile(r"^\[  FAILED  \] (\d+) test")
CM_SKIP = re.compile(r"^\[  SKIPPED \] (\d+) test")


def count(log: str):
    p = f = s = 0
    for line in log.splitlines():
        m = PLAIN.match(line)
        if m:
            p += int(m[1]); f += int(m[2]); s += int(m[3] or 0)
            continue
        for rx, kind in ((CM_PASS, "p"), (CM_FAIL, "f"), (CM_SKIP, "s")):
            m = rx.match(line)
            if m:
                n = int(m[1])
                if kind == "p": p += n
                elif kind == "f": f += n
                else: s += n
    return p, f, s


def main(suites):
    tp = tf = ts = 0
    failed_suite = False
    for name in suites:
        log_path = Path("build/results") / f"{name}.log"
        rc_path = Path("build/results") / f"{name}.rc"
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        rc = int(rc_path.read_text().strip() or 1) if rc_path.exists() else 1
        p, f, s = count(log)
        if rc != 0 and f == 0:
            f = 1
        if rc != 0 or f:
            failed_suite = True
        print(f"suite {name}: {p} passed, {f} failed, {s} skipped (exit {rc})")
        tp += p; tf += f; ts += s
    print(f"{tp} passed, {tf} failed, {ts} skipped")
    return 1 if failed_suite or tf else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
