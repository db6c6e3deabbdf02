"""Label-space findings: class counts and imbalance, categories used but not defined (training drops
their annotations) or defined but never used (a class the model cannot learn), and train / val label
spaces that differ (a class the model never sees in training, or one never evaluated)."""
from __future__ import annotations

from collections import Counter

from detseg.data.doctor.inventory import SplitInventory


def class_balance(histogram: Counter) -> dict:
    """Counts per class (the per-file check's: crowd, difficult and unknown-class annotations out) and
    the imbalance ratio, the largest count over the smallest (None without two counted classes)."""
    counts = {str(k): int(v) for k, v in sorted(histogram.items()) if v > 0}
    ratio = max(counts.values()) / min(counts.values()) if len(counts) > 1 else None
    return {"class_counts": counts, "imbalance_ratio": None if ratio is None else round(ratio, 2)}


def label_space_findings(inv: SplitInventory) -> dict:
    """Used-but-undefined and defined-but-unused labels of one split (COCO ids shown with their names)."""
    used = {k for k, n in inv.used.items() if n > 0}
    if inv.defined is None:
        return {"undefined_used": [], "defined_unused": []}
    return {"undefined_used": [_show(inv, k) for k in sorted(used - set(inv.defined), key=str)],
            "defined_unused": [_show(inv, k) for k in inv.defined if k not in used]}


def label_space(inv: SplitInventory) -> set:
    """What the split's labels are: the defined ones, else the used ones (VOC without data.classes)."""
    return set(inv.defined) if inv.defined is not None else {k for k, n in inv.used.items() if n > 0}


def label_space_difference(train: SplitInventory, val: SplitInventory) -> dict:
    """Labels of one split that the other lacks."""
    a, b = label_space(train), label_space(val)
    return {"only_in_train": [_show(train, k) for k in sorted(a - b, key=str)],
            "only_in_val": [_show(val, k) for k in sorted(b - a, key=str)]}


def _show(inv: SplitInventory, label) -> str:
    name = inv.names.get(label)
    return f"{label} ({name})" if name is not None and str(name) != str(label) else str(label)
