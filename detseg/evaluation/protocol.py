"""The one protocol every evaluator follows, so that one loop (detseg.app.evaluate) drives them all.

Per batch, ``process(batch, predictions)``: ``batch`` is the collated ``Batch`` the model ran on (an
evaluator reads what it needs of it: ``image_ids``, ``class_labels``) and ``predictions`` the model's
per-image outputs on the CPU, in batch order. Ground truth the batch does not carry (VOC difficult
flags, full-size label maps) is given at construction as a callable of the image id, so that
evaluation needs no dataset class.

Then ``evaluate() -> {block: {name: value}}``, e.g. ``{"bbox": {...}, "voc": {...}}``: a collective in
distributed runs (every rank calls it), the blocks on rank 0 and ``{}`` on the other ranks. The loop
merges the blocks of its evaluators in their order.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from detseg.structures.batch import Batch


@runtime_checkable
class Evaluator(Protocol):
    def process(self, batch: Batch, predictions: Sequence[Any]) -> None: ...

    def evaluate(self) -> dict[str, dict]: ...
