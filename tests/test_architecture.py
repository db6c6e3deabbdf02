"""The package's layers (pyproject.toml's import-linter contracts) hold, and each import that once leaked
across them would break one again."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())", "--no-cache"]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(LINT, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_import_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


# (module that would import, the import, the contract it breaks): the leaks the redesign removed
LEAKS = [
    ("models/roi/roi_heads.py", "from detseg.models.backbones.base import Backbone", "never the backbone package"),
    ("models/dense/ssd_head.py", "from detseg.models.necks import ssd_extra", "Inside models"),
    ("data/proposals.py", "from detseg.models.roi import poolers", "Package layers"),
    ("data/build.py", "from detseg.engine import optim", "Package layers"),
    ("models/backbones/transfer.py", "from detseg.engine import trainer", "Package layers"),
    ("evaluation/val_loss.py", "from detseg.engine import metrics", "Evaluation scores predictions"),
    ("engine/trainer.py", "from detseg.data import collate", "The engine runs the model it is given"),
    ("models/backbones/resnet.py", "from detseg.models.roi import box_head", "Backbones know no head"),
    ("reports/browse.py", "from detseg.app import pipeline", "Package layers"),
]


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("layers")
    shutil.copy(ROOT / "pyproject.toml", base / "pyproject.toml")
    return base


@pytest.mark.parametrize("module,line,contract", LEAKS, ids=[leak[0] for leak in LEAKS])
def test_each_former_leak_breaks_a_contract(package_copy, module, line, contract):
    package = package_copy / "detseg"
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(ROOT / "detseg", package, ignore=shutil.ignore_patterns("__pycache__"))
    target = package / module
    target.write_text(target.read_text() + f"\n{line}\n")
    result = _lint(package_copy)
    assert result.returncode != 0
    broken = " ".join(result.stdout.split("Broken contracts", 1)[-1].split())  # the report wraps at 80
    assert contract in broken and module.replace("/", ".").removesuffix(".py") in broken, broken[-2000:]


def test_package_root_holds_only_subpackages():
    loose = sorted(p.name for p in (ROOT / "detseg").glob("*.py") if p.name != "__init__.py")
    assert loose == []
    assert {"app", "data", "models", "engine", "evaluation", "structures", "config", "utils"} <= {
        p.name for p in (ROOT / "detseg").iterdir() if (p / "__init__.py").is_file()}
