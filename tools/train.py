"""python tools/train.py ... = detseg train ... (the command lives in detseg/cli/train.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from detseg.cli.train import run  # noqa: E402

if __name__ == "__main__":
    run()
