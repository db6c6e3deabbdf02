"""JSON that every reader accepts: NaN and infinities (a metric with nothing to score, a diverged loss)
become null, as the JSON standard has no such numbers and Python's default writes them anyway."""
from __future__ import annotations

import json
import math
from typing import Any


def finite_or_null(tree: Any) -> Any:
    if isinstance(tree, float):
        return tree if math.isfinite(tree) else None
    if isinstance(tree, dict):
        return {k: finite_or_null(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [finite_or_null(v) for v in tree]
    return tree


def dumps(tree: Any, **kwargs) -> str:
    """``json.dumps`` with non-finite floats written as null (and refused anywhere else)."""
    return json.dumps(finite_or_null(tree), allow_nan=False, **kwargs)
