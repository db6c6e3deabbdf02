"""Issue 7 item 6 with a real process: SIGKILL while the trainer writes checkpoints, then --resume.

The in-process crash-mid-write test is tests/engine/test_checkpoint.py; this one kills an actual
``tools/train.py`` the moment its temporary checkpoint file appears (so mid-write), several times.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import CONFIG, ROOT, TINY, data_overrides
from detseg.utils.checkpoint import load_checkpoint

KILLS = 3


def _start(out: Path, overrides: list[str], *extra: str, log: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sink = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "tools/train.py", CONFIG, "--output-dir", str(out), *overrides, *extra],
                            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)


def _kill_mid_write(proc: subprocess.Popen, out: Path, nth: int, timeout: float = 240.0) -> bool:
    """SIGKILL as soon as the nth new temporary checkpoint (written over an existing last.pt)
    appears (True), or after the timeout (False)."""
    deadline, stale, seen = time.monotonic() + timeout, set(os.listdir(out)), set()
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "last.pt").exists():
            # a checkpoint's temp file (.last.pt.<pid>.<uuid>.tmp); config.yaml is written atomically too
            seen |= {n for n in os.listdir(out) if n.endswith(".tmp") and ".pt." in n and n not in stale}
        if len(seen) >= nth:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.001)
    proc.kill()
    proc.wait()
    return False


def _final_files_load(out: Path) -> int:
    for path in out.glob("*.pt"):  # every non-hidden .pt is a final name
        load_checkpoint(path)
    return load_checkpoint(out / "last.pt")["iteration"]


@pytest.mark.slow
def test_sigkill_during_checkpoint_writes_then_resume(tmp_path, shapes_paths):
    out = tmp_path / "run"
    out.mkdir()
    overrides = [*TINY, *data_overrides(shapes_paths), "train.checkpoint_period=1", "train.max_iters=1000"]
    iterations, mid_write = [], 0
    for attempt in range(KILLS):
        proc = _start(out, overrides, *(["--resume"] if attempt else []))
        mid_write += _kill_mid_write(proc, out, nth=attempt + 1)
        assert proc.returncode == -signal.SIGKILL
        iterations.append(_final_files_load(out))
    assert mid_write >= 1, "never caught a checkpoint mid-write"
    # each kill hit the write of iteration k+1 and left iteration k; each resume moved on
    assert iterations == sorted(set(iterations)) and iterations[0] >= 1, iterations
    target = iterations[-1] + 2
    log = tmp_path / "resume.log"
    proc = _start(out, [*overrides, f"train.max_iters={target}"], "--resume", log=log)
    proc.wait(timeout=300)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert f"resumed from {out / 'last.pt'} at iteration {iterations[-1]}" in log.read_text()
    assert load_checkpoint(out / "last.pt")["iteration"] == target
    assert not list(out.glob("*.tmp")), "temp files of killed runs are cleaned up on the next start"
