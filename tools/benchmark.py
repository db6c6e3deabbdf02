"""python tools/benchmark.py ... = detseg benchmark ... (the command lives in detseg/cli/benchmark.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from detseg.cli.benchmark import run  # noqa: E402

if __name__ == "__main__":
    run()
