"""Every number README.md and docs/ quote matches its JSON in benchmarks/results/."""

import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location("check_numbers", ROOT / "benchmarks" / "check_numbers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_published_numbers_match_their_json():
    assert _checker().check() == []


def test_the_checker_catches_a_changed_number(tmp_path, monkeypatch):
    mod = _checker()
    # every page the checker may read
    for page in ["README.md", *(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, tmp_path / page)
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    assert mod.check() == []
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("73.21 ± 0.91 %", "73.12 ± 0.91 %"))
    svm = tmp_path / "docs" / "svm.md"
    svm.write_text(
        svm.read_text().replace(
            "| two_moons | 1 | 1.000 | 1.0000 | 1.4e-06", "| two_moons | 1 | 1.000 | 1.0000 | 1.5e-06"
        )
    )
    explain = tmp_path / "docs" / "explain.md"
    explain.write_text(explain.read_text().replace("| plain loss | 0.992 |", "| plain loss | 0.993 |"))
    errors = mod.check()
    # each changed number is caught (a number may be checked by more than one claim), nothing else
    assert {e.split(":")[0].split(" ")[0] for e in errors} == {"README.md", "docs/explain.md", "docs/svm.md"}
    assert any("73.21 ± 0.91" in e for e in errors) and any("two_moons" in e for e in errors)
    assert all("plain loss" in e for e in errors if e.startswith("docs/explain.md"))
