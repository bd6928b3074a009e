#!/usr/bin/env python3
"""bench_compare.py -- the chain's benchmark on an older commit and on this tree, side by side (`make bench-compare`).

Builds the services of commit REF in a folder of their own
(.cache/bench-compare/<commit>/, kept for the next comparison with the same
commit), then runs this tree's `tests/bench/bench_services.py --only chain`
against the old build (--build) and against this tree's, in alternating
order: round 1 old then new, round 2 new then old, and so on, so that both
meet the machine in the same moods. Both are measured by the same
benchmark and started by this tree's scripts/run.sh over the same FerretDB
and PostgreSQL; only the services differ. Prints each round's figures, then
the median of each figure over the rounds, old, new, and new/old:

    bench-compare <case> <old> <new> <new/old> <unit>

A run that fails (a degraded answer, a missing document; on a busy machine
a stalled database makes a hop's deadline pass now and then) is run once
more, with its output's last lines shown; a second failure ends the
comparison with exit 1. Standard library only.

    tests/bench/bench_compare.py REF [ROUNDS] [--seconds S]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("BUILD", "build")
CACHE = ROOT / ".cache" / "bench-compare"
FIGURE = re.compile(r"^bench-services (\S+) (\S+) (\S+)$")
# What the scripts of this tree that start the old services pass them; when
# these changed since REF, the old services run with this tree's settings.
STARTERS = ["scripts/run.sh", "scripts/postgres.sh", "services.tsv"]


def say(line: str = ""):
    print(line, flush=True)


def git(*args) -> str:
    """The output of git args in this tree; exits with git's message when it fails."""
    r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench-compare: git {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def build_old(commit: str) -> Path:
    """The build folder of commit's services, built from `git archive` of
    it when not there yet (.cache/bench-compare/<commit>/src/build)."""
    src = CACHE / commit / "src"
    build = src / "build"
    if all((build / "bin" / n).is_file() for n in ("order", "payment", "shipment")):
        say(f"bench-compare: old services already built in {build}")
        return build
    shutil.rmtree(CACHE / commit, ignore_errors=True)
    src.mkdir(parents=True)
    say(f"bench-compare: building the services of {commit[:12]} in {src}")
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"bench-compare: git archive {commit} failed")
    r = subprocess.run(["make", "-C", str(src), "--no-print-directory", "-s", f"-j{os.cpu_count() or 1}",
                        "services-rel", "BUILD=build"], capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(CACHE / commit, ignore_errors=True)
        raise SystemExit(f"bench-compare: building {commit[:12]} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return build


def bench(build: Path, seconds: float) -> dict:
    """One run of the chain's benchmark on the services of build, once more
    when it fails: {case: (value, unit)}. Exits when both runs failed."""
    argv = [sys.executable, str(ROOT / "tests" / "bench" / "bench_services.py"), "--only", "chain",
            "--build", str(build)] + (["--seconds", f"{seconds:g}"] if seconds else [])
    for attempt in (1, 2):
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode == 0:
            break
        say("\n".join((r.stdout + r.stderr).splitlines()[-4:]))
        if attempt == 2:
            raise SystemExit(f"bench-compare: the benchmark of {build} failed twice")
        say(f"bench-compare: the benchmark of {build} failed; running it once more")
    figures = {}
    for line in r.stdout.splitlines():
        m = FIGURE.match(line)
        # the documents checked are a count of the run's own check, not a figure
        if m and m.group(1) not in ("machine", "goal", "chain_documents_checked"):
            figures[m.group(1)] = (float(m.group(2)), m.group(3))
    return figures


def table(title: str, old: dict, new: dict):
    """Prints one line per figure: old, new and new/old."""
    say(title)
    for case, (value, unit) in new.items():
        if case not in old:
            continue
        before = old[case][0]
        ratio = f"{value / before:.3f}" if before else "-"
        say(f"bench-compare {case:<44} {before:>9.2f} {value:>9.2f} {ratio:>7} {unit}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref", help="the old commit (any name git knows: HEAD~1, a hash, a branch)")
    ap.add_argument("rounds", nargs="?", type=int, default=3, help="rounds of old and new (default 3)")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 0)) or None,
                    help="length of each measured load (bench_services.py's default when not given)")
    args = ap.parse_args()
    if not 1 <= args.rounds <= 20:
        ap.error("ROUNDS must be 1..20")
    commit = git("rev-parse", "--verify", f"{args.ref}^{{commit}}")
    head = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    new_name = f"this tree ({head[:12]}{' with changes not committed' if dirty else ''}, {BUILD})"
    old_build = build_old(commit)
    changed = git("diff", "--stat", commit, "HEAD", "--", *STARTERS)
    if changed:
        say(f"bench-compare: note: the old services start under this tree's {', '.join(STARTERS)}, "
            f"changed since {commit[:12]}:\n{changed}")
    say(f"bench-compare: old = {commit[:12]} ({git('log', '-1', '--format=%s', commit)[:70]})")
    say(f"bench-compare: new = {new_name}")
    say(f"bench-compare: {args.rounds} round(s), each one run of old and one of new, in turn first")
    runs = {"old": [], "new": []}
    for i in range(1, args.rounds + 1):
        order = ("old", "new") if i % 2 else ("new", "old")
        got = {}
        for side in order:
            got[side] = bench(old_build if side == "old" else BUILD, args.seconds)
            runs[side].append(got[side])
        table(f"bench-compare round {i} ({order[0]} first): case, old, new, new/old, unit",
              got["old"], got["new"])
    medians = {side: {case: (statistics.median(r[case][0] for r in rs if case in r), unit)
                      for case, (_, unit) in rs[0].items()}
               for side, rs in runs.items()}
    table(f"bench-compare median of {args.rounds} round(s): case, old, new, new/old, unit",
          medians["old"], medians["new"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
