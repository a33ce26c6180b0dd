"""Wall and CPU time of ``make demo`` on a clone whose venv is already installed.

The install is excluded (``make -o .venv/.installed demo``: the stamp counts as up to date).
Run it on a fresh clone after ``make test`` or ``make demo`` has installed the venv::

    git clone <repo> /tmp/clone && (cd /tmp/clone && make test)
    python benchmarks/demo_time.py --repo /tmp/clone

Writes ``benchmarks/results/demo_time.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time

from _common import write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", default=".", help="the clone to run make demo in")
    args = p.parse_args()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        ["make", "-o", ".venv/.installed", "demo"], cwd=args.repo, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"make demo failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    head = ["git", "rev-parse", "HEAD"]
    commit = subprocess.run(head, cwd=args.repo, capture_output=True, text=True, check=False).stdout
    write_json(
        "demo_time",
        {
            "commit": commit.strip(),
            "wall_seconds": wall,
            "user_seconds": after.ru_utime - before.ru_utime,
            "sys_seconds": after.ru_stime - before.ru_stime,
            "load_average_after": os.getloadavg(),
            "summary_tail": proc.stdout.strip().splitlines()[-8:],
        },
    )
    print(f"make demo: {wall:.1f} s wall, {after.ru_utime - before.ru_utime:.1f} s user")


if __name__ == "__main__":
    main()
