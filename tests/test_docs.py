"""The documentation builds with `mkdocs build --strict`, and public names have docstrings."""

import importlib
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = [
    "kktexplain",
    "kktexplain.kkt",
    "kktexplain.datasets",
    "kktexplain.models",
    "kktexplain.svm",
    "kktexplain.viz",
    "kktexplain.attr",
    "kktexplain.report",
    "kktexplain.distill",
    "kktexplain.generate",
]


def test_mkdocs_build_strict(tmp_path):
    exe = shutil.which("mkdocs") or str(Path(sys.executable).with_name("mkdocs"))
    if not Path(exe).exists():
        pytest.fail("mkdocs is not installed: pip install -e '.[dev]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [exe, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("module", PUBLIC)
def test_public_names_have_numpy_docstrings(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        obj = getattr(mod, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        assert doc, f"{module}.{name} has no docstring"
        if inspect.isfunction(obj) and inspect.signature(obj).parameters:
            assert "Parameters" in doc, f"{module}.{name} lacks a Parameters section"
