"""The dataset doctor: whole-dataset findings beyond the per-file check (detseg.data.check).

``diagnose`` takes each split's inventory (``split_inventory(data_cfg, split)``), the per-file
check's class histogram and, for models with an RPN, the resolved anchors and test resize
(``AnchorSetup``: the command resolves "auto" sizes through the app layer first), and returns a
``DoctorReport``: exact and near-duplicate images within a split and across train / val (leakage),
images without annotations, class counts and imbalance, undefined and unused categories, a label
space that differs between train and val, and the share of boxes the anchors match. Everything is a
warning; image files are read, never written. ``write_fixed_splits`` writes leakage-free split
files into a new folder.
"""
from __future__ import annotations

from collections import Counter

from detseg.data.doctor.anchors import AnchorSetup, anchor_report
from detseg.data.doctor.duplicates import DuplicatePair, find_duplicates, fingerprint
from detseg.data.doctor.fix_splits import write_fixed_splits
from detseg.data.doctor.inventory import SplitInventory, split_inventory
from detseg.data.doctor.labels import class_balance, label_space_difference, label_space_findings
from detseg.data.doctor.report import DoctorReport

__all__ = ["AnchorSetup", "DoctorReport", "SplitInventory", "diagnose", "split_inventory", "write_fixed_splits"]


def diagnose(inventories: dict[str, SplitInventory], histograms: dict[str, Counter],
             anchors: AnchorSetup | None = None, anchors_note: str | None = None) -> DoctorReport:
    """``inventories`` and ``histograms`` keyed by split ("train", "val"; one or both)."""
    report = DoctorReport(anchors_note=anchors_note)
    for split, inv in inventories.items():
        report.splits[split] = _split_summary(inv, histograms.get(split, Counter()), anchors)
    _add_duplicates(report, inventories)
    if {"train", "val"} <= set(inventories):
        report.label_space_difference = label_space_difference(inventories["train"], inventories["val"])
    return report


def _split_summary(inv: SplitInventory, histogram: Counter, anchors: AnchorSetup | None) -> dict:
    unannotated = [e.name for e in inv.images if e.num_annotations == 0]
    summary = {"source": inv.source, "num_images": len(inv.images),
               "images_without_annotations": len(unannotated), "unannotated": unannotated,
               **class_balance(histogram), **label_space_findings(inv)}
    if anchors is not None and inv.stats is not None:
        summary["anchors"] = anchor_report(inv.stats, anchors)
    return summary


def _add_duplicates(report: DoctorReport, inventories: dict[str, SplitInventory]) -> None:
    entries = {f"{split}:{e.name}": (split, e) for split, inv in inventories.items() for e in inv.images}
    names = list(entries)
    pairs = find_duplicates(names, [fingerprint(entries[n][1].path) for n in names])
    report.duplicates = {f"within_{split}": [] for split in inventories}
    if len(inventories) > 1:
        report.duplicates["across"] = []
    leaked = {}
    for pair in pairs:
        (split_a, a), (split_b, b) = entries[pair.first], entries[pair.second]
        if split_a == split_b:
            report.duplicates[f"within_{split_a}"].append(pair)
            continue
        report.duplicates["across"].append(_train_first(pair, split_a))
        val_entry = a if split_a == "val" else b
        leaked[str(val_entry.key)] = val_entry.key
    report.leaked_val_keys = list(leaked.values())


def _train_first(pair: DuplicatePair, first_split: str) -> DuplicatePair:
    if first_split == "train":
        return pair
    return DuplicatePair(pair.second, pair.first, pair.kind, pair.bits)
