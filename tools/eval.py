"""python tools/eval.py ... = detseg eval ... (the command lives in detseg/cli/evaluate.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from detseg.cli.evaluate import run  # noqa: E402

if __name__ == "__main__":
    run()
