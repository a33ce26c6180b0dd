"""Mutation score from mutmut's results, less the mutants listed as equivalent in docs/testing.md.

``make mutate`` runs ``mutmut run`` (configured in pyproject.toml) and then this script, which
writes ``benchmarks/results/mutation.json``::

    .venv/bin/python benchmarks/mutation_score.py [mutant-glob ...]
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KILLED = {"killed", "timeout"}


def equivalents() -> dict[str, str]:
    """``mutant name -> reason`` from the table in docs/testing.md."""
    out = {}
    for line in (ROOT / "docs" / "testing.md").read_text().splitlines():
        m = re.match(r"\|\s*`([\w.]+__mutmut_\d+)`\s*\|(.*)\|\s*$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def main(argv: list[str]) -> int:
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    text = subprocess.run([mutmut, "results", "--all", "true"], capture_output=True, text=True).stdout
    status = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\w.]+__mutmut_\d+): (.+)$", line)
        if m:
            status[m.group(1)] = m.group(2).strip()
    if argv:
        status = {k: v for k, v in status.items() if any(fnmatch.fnmatch(k, g) for g in argv)}
    status = {k: v for k, v in status.items() if v != "not checked"}
    eq = equivalents()
    by_module: dict[str, dict[str, int]] = {}
    survivors = []
    for name, s in status.items():
        module = name.split(".x_")[0].split(".xǁ")[0]
        row = by_module.setdefault(module, {"total": 0, "killed": 0, "equivalent": 0, "survived": 0})
        row["total"] += 1
        if s in KILLED:
            row["killed"] += 1
        elif name in eq:
            row["equivalent"] += 1
        else:
            row["survived"] += 1
            survivors.append(f"{name}: {s}")
    for row in by_module.values():
        row["score"] = row["killed"] / max(row["total"] - row["equivalent"], 1)
    total = {k: sum(r[k] for r in by_module.values()) for k in ("total", "killed", "equivalent", "survived")}
    total["score"] = total["killed"] / max(total["total"] - total["equivalent"], 1)
    result = {
        "command": "make mutate" + (" MUTANTS='" + " ".join(argv) + "'" if argv else ""),
        "tool": "mutmut",
        "total": total,
        "by_module": by_module,
        "not_killed_or_equivalent": sorted(survivors),
    }
    out = ROOT / "benchmarks" / "results" / "mutation.json"
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(total))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
