"""The installed ``detseg`` command: its commands are the tools, every flag explains itself, renamed flags
keep working, errors are one line unless --debug."""
from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from detseg import __version__
from detseg.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DETSEG = Path(sys.executable).parent / "detseg"  # pip install -e . puts it beside the interpreter


def _detseg(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(DETSEG), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_command_is_installed_and_lists_every_tool():
    assert DETSEG.is_file(), "pip install -e . should install the detseg command ([project.scripts])"
    result = _detseg("--help")
    assert result.returncode == 0
    listed = re.findall(r"^  ([a-z-]+) {2,}\S", result.stdout.split("commands:", 1)[1], re.M)
    assert listed == list(COMMANDS)
    assert _detseg("--version").stdout.startswith(f"detseg {__version__} (torch ")


def test_every_tool_script_is_a_command():
    """tools/X.py runs detseg.cli.<module>.run, the module behind one command."""
    modules = {module for module, _ in COMMANDS.values()}
    for script in sorted((ROOT / "tools").glob("*.py")):
        used = re.search(r"from detseg\.cli\.(\w+) import run", script.read_text())
        assert used and used.group(1) in modules, script.name
    for module in modules:
        assert callable(importlib.import_module(f"detseg.cli.{module}").run)


def _options_without_help(help_text: str) -> list[str]:
    """Option lines of argparse's help whose help column is empty."""
    lines = help_text.split("options:", 1)[1].splitlines()
    bare = []
    for line, following in zip(lines, lines[1:] + [""]):
        option = re.match(r"^  (-[^ ].*?)$", line)
        if option and not re.search(r"\S {2,}\S", line.strip()) and not following.startswith(" " * 10):
            bare.append(option.group(1))
    return bare


HELP_ARGS = {"benchmark": [["--help"], ["--zoo", "--help"], ["--compare-torchvision", "--help"]],
             "make-dataset": [["--help"], ["shapes", "--help"], ["shape-crops", "--help"]]}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_has_help_and_shows_its_default(command, capsys):
    module = importlib.import_module(f"detseg.cli.{COMMANDS[command][0]}")
    for argv in HELP_ARGS.get(command, [["--help"]]):
        with pytest.raises(SystemExit) as exit_info:
            module.main(argv)
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert _options_without_help(text) == [], argv
        flat = " ".join(text.split())
        assert "(default: None)" not in flat and "(default: False)" not in flat  # unset options show none


def test_help_texts(capsys):
    from detseg.cli import infer, make_dataset

    for module, argv in ((infer, ["--help"]), (make_dataset, ["shapes", "--help"])):
        with pytest.raises(SystemExit):
            module.main(argv)
        text = capsys.readouterr().out
        assert _options_without_help(text) == []
        assert "--version" in text or argv[0] == "shapes"
    with pytest.raises(SystemExit):
        infer.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.5)" in text and "--out " not in text


def test_make_dataset_end_to_end_with_the_renamed_flag_still_accepted(tmp_path):
    result = _detseg("make-dataset", "shapes", "--output-dir", tmp_path / "new", "--num-train", 2, "--num-val", 1,
                     "--min-size", 64, "--max-size", 80)
    assert result.returncode == 0, result.stderr
    new = json.loads((tmp_path / "new" / "annotations" / "instances_val.json").read_text())
    old = _detseg("make-dataset", "shapes", "--out", tmp_path / "old", "--num-train", 2, "--num-val", 1,
                  "--min-size", 64, "--max-size", 80)
    assert old.returncode == 0, old.stderr
    assert json.loads((tmp_path / "old" / "annotations" / "instances_val.json").read_text()) == new
    assert not re.search(r"--out(?![\w-])", _detseg("make-dataset", "shapes", "--help").stdout)  # hidden


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "nothing.yaml"
    plain = _detseg("check", missing)
    assert plain.returncode == 2 and plain.stderr.strip().splitlines() == [plain.stderr.strip()]
    assert plain.stderr.startswith("error: ") and str(missing) in plain.stderr
    debug = _detseg("--debug", "check", missing)
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug.stderr


def test_an_unknown_command_lists_the_commands():
    result = _detseg("trian")
    assert result.returncode == 2 and "invalid choice: 'trian'" in result.stderr and "train" in result.stderr
