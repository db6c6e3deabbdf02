"""``solver.class_weights: auto``: per-class loss weights from the training set's label counts.

The weight of a class is the inverse of its count (boxes; images for image classification), normalised so
the classes' weights average 1, then clipped to [MIN_WEIGHT, MAX_WEIGHT] so that a rare class cannot
dominate the loss (a class without any box gets MAX_WEIGHT: it has nothing to weigh anyway). The values go
into ``solver.class_weights_values`` (the run's config.yaml) and from there to the model builder, which hands
them to the architectures of CLASS_WEIGHTED; the others train unweighted and the line says so.
"""
from __future__ import annotations

from typing import Sequence

from detseg.config import Config
from detseg.models.build import CLASS_WEIGHTED
from detseg.reports.labels import label_statistics

MIN_WEIGHT, MAX_WEIGHT = 0.25, 4.0
DECIMALS = 4  # stored rounded: config.yaml stays readable and the model uses exactly what it says


def inverse_frequency_weights(counts: Sequence[int]) -> list[float]:
    """One weight per class: 1 / count, normalised to mean 1, then clipped to [MIN_WEIGHT, MAX_WEIGHT]."""
    inverse = [1.0 / max(count, 1) for count in counts]
    mean = sum(inverse) / len(inverse)
    return [min(MAX_WEIGHT, max(MIN_WEIGHT, w / mean)) for w in inverse]


def imbalance_ratio(counts: Sequence[int]) -> float:
    """How many times the most frequent class outnumbers the least frequent one (an absent class counts 1)."""
    return max(counts) / max(min(counts), 1)


def settle_class_weights(cfg: Config, train_set) -> str | None:
    """Fill ``solver.class_weights_values`` under "auto" from ``train_set`` (the label space settled); returns
    the one line to say, None when weighting is off."""
    cfg.solver.class_weights_values = None
    if cfg.solver.class_weights != "auto":
        return None
    stats = label_statistics(train_set) if cfg.model.arch in CLASS_WEIGHTED else None
    if stats is None:
        return (f"solver.class_weights=auto: model.arch '{cfg.model.arch}' ({cfg.data.task}) is not weighted (only the "
                f"detection losses are; semantic pixel counts would need every mask read): training unweighted")
    counts = stats["counts"]
    if len(counts) != cfg.model.num_classes:
        raise ValueError(f"solver.class_weights=auto: the training set has {len(counts)} classes, model.num_classes "
                         f"is {cfg.model.num_classes}")
    weights = [round(w, DECIMALS) for w in inverse_frequency_weights(counts)]
    cfg.solver.class_weights_values = weights
    names = cfg.model.class_names or [str(k) for k in range(len(counts))]
    listed = ", ".join(f"{name} {w:.2f} ({n})" for name, w, n in zip(names, weights, counts))
    return (f"class weights (solver.class_weights=auto, from {sum(counts)} training boxes; imbalance "
            f"{imbalance_ratio(counts):.1f}:1): {listed}")
