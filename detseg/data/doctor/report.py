"""The doctor's findings as one JSON-ready dict and as text. Every finding here is a warning: the
per-file check (detseg.data.check) decides the exit code; leakage gets a loud line of its own."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from detseg.data.doctor.duplicates import NEAR_BITS, DuplicatePair

LISTED = 10  # items listed per finding in the text (the JSON has all)
LEAK_MARK = "!!!"


@dataclass
class DoctorReport:
    splits: dict[str, dict] = field(default_factory=dict)      # per split: counts, labels, anchors
    duplicates: dict[str, list[DuplicatePair]] = field(default_factory=dict)  # within_train, within_val, across
    label_space_difference: dict | None = None
    anchors_note: str | None = None    # why there is no anchor section
    leaked_val_keys: list = field(default_factory=list)  # val split keys (VOC ids, COCO image ids) to drop

    def to_dict(self) -> dict:
        return {"splits": self.splits,
                "duplicates": {k: [asdict(p) for p in v] for k, v in self.duplicates.items()},
                "near_duplicate_max_bits": NEAR_BITS,
                "label_space_difference": self.label_space_difference,
                "anchors_note": self.anchors_note,
                "leaked_val_images": len(self.leaked_val_keys)}

    def text(self) -> str:
        lines = ["dataset doctor (whole-dataset findings; warnings, not errors):"]
        for split, info in self.splits.items():
            lines += _split_lines(split, info)
        for where, pairs in self.duplicates.items():
            lines += _duplicate_lines(where, pairs)
        if self.label_space_difference is not None:
            lines += _difference_lines(self.label_space_difference)
        if self.anchors_note:
            lines.append(f"  anchors: {self.anchors_note}")
        return "\n".join(lines)


def _listed(items: list) -> str:
    more = f", ... and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return ", ".join(map(str, items[:LISTED])) + more


def _split_lines(split: str, info: dict) -> list[str]:
    lines = [f"  {split} ({info['source']}): {info['num_images']} images, "
             f"{info['images_without_annotations']} without annotations (allowed: they show background)"]
    if info["unannotated"]:
        lines.append(f"    without annotations: {_listed(info['unannotated'])}")
    counts = ", ".join(f"{k} {v}" for k, v in info["class_counts"].items()) or "none"
    ratio = info["imbalance_ratio"]
    lines.append(f"    class counts: {counts}" + (f"; imbalance {ratio} (max / min)" if ratio else ""))
    for key, title in (("undefined_used", "used but not defined (dropped in training)"),
                       ("defined_unused", "defined but never used")):
        if info[key]:
            lines.append(f"    categories {title}: {_listed(info[key])}")
    if "anchors" in info:
        lines += _anchor_lines(info["anchors"])
    return lines


def _anchor_lines(anchors: dict) -> list[str]:
    lines = [f"    {anchors['setup']}"]
    if not anchors["num_boxes"]:
        return lines + ["    no boxes"]
    sides = ", ".join(f"{k} {v}" for k, v in anchors["box_side_px"].items())
    low, high = anchors["anchor_side_px"]
    n = anchors["num_boxes"]
    return lines + [f"    box side sqrt(w*h) at that scale, px: {sides} (anchors {low:g} to {high:g})",
                    f"    best centred anchor (shape-only IoU) >= 0.5: {anchors['boxes_iou_0.5']} of {n} boxes "
                    f"({100 * anchors['share_iou_0.5']:.2f}%), >= 0.7: {anchors['boxes_iou_0.7']} "
                    f"({100 * anchors['share_iou_0.7']:.2f}%); {n - anchors['boxes_iou_0.5']} below 0.5 are "
                    "lost before training starts"]


def _duplicate_lines(where: str, pairs: list[DuplicatePair]) -> list[str]:
    exact = sum(p.kind == "exact" for p in pairs)
    summary = f"{exact} exact, {len(pairs) - exact} near (pHash <= {NEAR_BITS} of 64 bits)"
    if where == "across":
        head = (f"  {LEAK_MARK} LEAKAGE: {len(pairs)} train/val image pair(s) are duplicates ({summary}): the val "
                f"score overstates; --fix-splits OUT_DIR writes split files without them" if pairs else
                "  train/val leakage: none (no exact or near duplicates across the splits)")
    else:
        head = f"  duplicates {where.replace('_', ' ')}: " + (summary if pairs else "none")
    shown = [f"    - {p.kind}" + (f" ({p.bits} bits)" if p.kind == "near" else "") + f": {p.first} = {p.second}"
             for p in pairs[:LISTED]]
    more = [f"    ... and {len(pairs) - LISTED} more"] if len(pairs) > LISTED else []
    return [head, *shown, *more]


def _difference_lines(diff: dict) -> list[str]:
    if not diff["only_in_train"] and not diff["only_in_val"]:
        return ["  label space: train and val agree"]
    lines = ["  label space differs between train and val:"]
    if diff["only_in_train"]:
        lines.append(f"    only in train (never evaluated): {_listed(diff['only_in_train'])}")
    if diff["only_in_val"]:
        lines.append(f"    only in val (never learned): {_listed(diff['only_in_val'])}")
    return lines
