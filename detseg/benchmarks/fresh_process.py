"""Run one benchmark module's command line in a new interpreter and read back its one-line JSON report.

Measurements that depend on the process itself go there: peak memory (one side's peak must not hide in
the other's), and COCO evaluation, whose forked evaluators copy the parent's page tables (a benchmark
process holding the 12 models the speed section timed, 4 GiB, forks 100-150 ms slower than a process
that only evaluates).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_json(module: str, args: list[str], timeout: float = 900) -> dict:
    """``python -m module *args`` from the repository root; its last stdout line, parsed."""
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
