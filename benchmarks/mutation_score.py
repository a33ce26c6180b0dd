"""Mutation score from mutmut's results, less the mutants listed as equivalent in docs/testing.md.

``make mutate`` runs ``mutmut run`` (configured in pyproject.toml) and then this script, which
writes ``benchmarks/results/mutation.json``::

    .venv/bin/python benchmarks/mutation_score.py [mutant-glob ...]

A full run needs hours on two cores, so ``make mutate SAMPLE=150 SEED=12`` runs a random sample
instead and reports the kill rate as an estimate with a 95% Wilson interval::

    .venv/bin/python benchmarks/mutation_score.py --sample 150 --seed 12 [--no-run]

The sample is drawn with ``random.Random(seed).sample`` from the sorted names of every mutant
mutmut generates for the files in ``[tool.mutmut] only_mutate``, so the same seed draws the
same mutants as long as the source does not change. Mutants of the sample that mutmut already
recorded as killed are not run again (an interrupted sample resumes where it stopped; survivors
are re-run, so new tests count). ``--no-run`` scores the sample from the results mutmut already
holds (in ``mutants/``) without running anything.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "mutation.json"
# a mutant is detected when the tests fail, time out or crash
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
Z95 = 1.959963984540054

# mutmut 3 generates mutants only as the first step of `mutmut run`; this does that step alone
_GENERATE = """
from pathlib import Path
from mutmut import __main__ as m
Path("mutants").mkdir(exist_ok=True)
m.copy_src_dir(); m.copy_also_copy_files(); m.setup_source_paths(); m.store_lines_covered_by_tests()
print(m.create_mutants(2))
"""


def equivalents() -> dict[str, str]:
    """``mutant name -> reason`` from the table in docs/testing.md."""
    out = {}
    for line in (ROOT / "docs" / "testing.md").read_text().splitlines():
        m = re.match(r"\|\s*`([\w.]+__mutmut_\d+)`\s*\|(.*)\|\s*$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n``."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def module_of(name: str) -> str:
    return name.split(".x_")[0].split(".xǁ")[0]


def mutmut_bin() -> str:
    return str(Path(sys.executable).with_name("mutmut"))


def all_statuses() -> dict[str, str]:
    """``mutant name -> status`` for every mutant mutmut has generated (read from mutants/)."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for meta in sorted((ROOT / "mutants").rglob("*.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[name] = status_by_exit_code[code]
    return out


def generate() -> None:
    subprocess.run([sys.executable, "-c", _GENERATE], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def draw(names: list[str], n: int, seed: int) -> list[str]:
    return random.Random(seed).sample(sorted(names), min(n, len(names)))


def score(status: dict[str, str]) -> tuple[dict, dict, list[str]]:
    eq = equivalents()
    by_module: dict[str, dict] = {}
    survivors = []
    for name, s in sorted(status.items()):
        row = by_module.setdefault(module_of(name), {"total": 0, "killed": 0, "equivalent": 0, "survived": 0})
        row["total"] += 1
        if s in KILLED:
            row["killed"] += 1
        elif name in eq:
            row["equivalent"] += 1
        else:
            row["survived"] += 1
            survivors.append(f"{name}: {s}")
    total = {k: sum(r[k] for r in by_module.values()) for k in ("total", "killed", "equivalent", "survived")}
    for row in [*by_module.values(), total]:
        n = row["total"] - row["equivalent"]
        row["score"] = row["killed"] / max(n, 1)
        row["ci95_wilson"] = [round(x, 4) for x in wilson(row["killed"], n)]
    return total, by_module, survivors


def main_sample(n: int, seed: int, run: bool) -> int:
    if not list((ROOT / "mutants").rglob("*.meta")):
        generate()
    population = all_statuses()
    sample = draw(list(population), n, seed)
    # a kill stands; mutants not run yet, and survivors (tests may have been added), are run
    todo = [k for k in sample if population[k] not in KILLED]
    if run and todo:
        subprocess.run([mutmut_bin(), "run", "--max-children", "2", *todo], cwd=ROOT)
    status = all_statuses()
    status = {k: status[k] for k in sample}
    not_run = sorted(k for k, v in status.items() if v == "not checked")
    total, by_module, survivors = score({k: v for k, v in status.items() if v != "not checked"})
    eq = equivalents()
    result = {
        "command": f"make mutate SAMPLE={n} SEED={seed}",
        "tool": "mutmut",
        "kind": "random sample: the score estimates the kill rate of all the mutants (95% Wilson interval)",
        "population": len(population),
        "population_by_module": dict(sorted(Counter(map(module_of, population)).items())),
        "sample_size": len(sample),
        "seed": seed,
        "draw": "random.Random(seed).sample(sorted(all mutant names), sample_size)",
        "total": total,
        "by_module": by_module,
        "not_killed_or_equivalent": survivors,
        "equivalent_in_sample": {k: eq[k] for k in sample if k in eq and status[k] not in KILLED},
        "not_run": not_run,
        "complete": not not_run,
        "caveat": (
            "a random sample: the score estimates the kill rate of all the mutants"
            if not not_run
            else f"{len(not_run)} of the sample not run yet; mutmut runs the mutants with the fastest tests "
            "first, so the ones run are not a random subset and the score covers only them"
        ),
        "sample": {k: status[k] for k in sorted(sample)},
    }
    OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(total))
    return 0


def main_all(globs: list[str]) -> int:
    text = subprocess.run([mutmut_bin(), "results", "--all", "true"], capture_output=True, text=True).stdout
    status = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\w.]+__mutmut_\d+): (.+)$", line)
        if m:
            status[m.group(1)] = m.group(2).strip()
    if globs:
        status = {k: v for k, v in status.items() if any(fnmatch.fnmatch(k, g) for g in globs)}
    status = {k: v for k, v in status.items() if v != "not checked"}
    total, by_module, survivors = score(status)
    result = {
        "command": "make mutate" + (" MUTANTS='" + " ".join(globs) + "'" if globs else ""),
        "tool": "mutmut",
        "total": total,
        "by_module": by_module,
        "not_killed_or_equivalent": survivors,
    }
    OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(total))
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, help="run and score this many mutants drawn at random")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--no-run", action="store_true", help="score the sample from mutmut's stored results")
    ap.add_argument("globs", nargs="*", help="without --sample: score only the mutants matching these")
    args = ap.parse_args(argv)
    if args.sample:
        return main_sample(args.sample, args.seed, run=not args.no_run)
    return main_all(args.globs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
