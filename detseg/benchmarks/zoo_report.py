"""The zoo's report files: zoo.md (the tables and their notes), zoo.json (every number), zoo.png and
zoo_backbones.png (zoo_plot: the architectures, and Faster R-CNN over each backbone)."""
from __future__ import annotations

import json
from pathlib import Path

from detseg.benchmarks.zoo_plot import plot_zoo

BACKBONE_HEADER = ("| Backbone (Faster R-CNN, FPN) | Box AP | AP50 | Train min (iters) | Infer ms/img | Params (M) "
                   "| GFLOPs | Test input |")
HEADER = ("| Architecture | Config | Backbone | Head input | Box AP | AP50 (FCN: mIoU) | Train min (iters) "
          "| Infer ms/img | Proposals ms/img | Params (M) | GFLOPs | Test input |")


def write_zoo(report: dict, output_dir: str | Path, json_path: str | Path | None = None) -> list[Path]:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, allow_nan=False)  # the rows hold None, never NaN
    written = [out / "zoo.json", out / "zoo.md"]
    written[0].write_text(text)
    written[1].write_text(format_zoo_markdown(report))
    architectures, backbones = split_axes(report["rows"])
    if any("error" not in r for r in architectures):
        written.append(plot_zoo(architectures, out / "zoo.png", title=budget_title(report)))
    if any("error" not in r for r in backbones):
        written.append(plot_zoo(backbones, out / "zoo_backbones.png",
                                title=budget_title(report).replace("detseg zoo", "Faster R-CNN backbones"),
                                ylabel="box AP on shapes val"))
    if json_path:
        Path(json_path).write_text(text)
        written.append(Path(json_path))
    return written


def budget_title(report: dict) -> str:
    budget = f"{report['iters']} iterations" if report.get("iters") else f"{report['minutes']:g} min"
    threads = f"{report['threads']} thread" + ("s" if report["threads"] != 1 else "")
    return f"detseg zoo on shapes: {budget} of CPU training each, {threads}"


def split_axes(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The architecture rows and the backbone-axis rows (a report without axes holds architectures only)."""
    backbones = [r for r in rows if r.get("axis") == "backbone"]
    return [r for r in rows if r.get("axis") != "backbone"], backbones


def format_zoo_markdown(report: dict) -> str:
    architectures, backbones = split_axes(report["rows"])
    parts = []
    if architectures:
        lines = [HEADER, _rule(HEADER), *[_table_row(r) for r in architectures]]
        parts += [*lines, "", *_notes(report, architectures)]
    if backbones:
        lines = [BACKBONE_HEADER, _rule(BACKBONE_HEADER), *[_backbone_row(r) for r in backbones]]
        parts += ([""] if parts else []) + [*lines, "", *_backbone_notes(report, backbones)]
    return "\n".join(parts) + "\n"


def _rule(header: str) -> str:
    return "|" + "---|" * (header.count(" | ") + 1)


def _backbone_row(row: dict) -> str:
    if "error" in row:
        error = " ".join(row["error"].replace("|", "/").split())[:160]
        return f"| {row['title']} | failed: {error} |" + " |" * 6
    cells = [f"`{row['title']}`", _num(row.get("ap")), _num(row.get("ap50")),
             f"{row['train_minutes']:.1f} ({row['train_iters']})", f"{row['infer_ms']:.1f}",
             f"{row['params'] / 1e6:.2f}", f"{row['gflops']:.2f}", "x".join(map(str, row["input_size"]))]
    return "| " + " | ".join(cells) + " |"


def _backbone_notes(report: dict, rows: list[dict]) -> list[str]:
    config = rows[0]["config"]
    return [f"{budget_title(report)}; `{config}` with only `model.backbone.name` and `width` changed, every "
            f"backbone from scratch with its own norm layers; speed on the first {report['timed_images']} val "
            "images at batch size 1 after a warm-up; params and GFLOPs of the whole detector.", *_busy(report)]


def _table_row(row: dict) -> str:
    if "error" in row:
        error = " ".join(row["error"].replace("|", "/").split())[:160]  # one cell: no pipes, no newlines
        return f"| {row['title']} | `{row['config']}` | failed: {error} |" + " |" * 9
    second = row["miou"] if row.get("miou") is not None else row.get("ap50")
    backbone = row["backbone"] + ("" if row.get("shared_backbone", True) else " (differs)")
    cells = [row["title"], f"`{row['config']}`", backbone, row["features"], _num(row.get("ap")), _num(second),
             f"{row['train_minutes']:.1f} ({row['train_iters']})", f"{row['infer_ms']:.1f}",
             _num(row.get("proposal_ms"), "—"), f"{row['params'] / 1e6:.2f}", f"{row['gflops']:.2f}",
             "x".join(map(str, row["input_size"]))]
    return "| " + " | ".join(cells) + " |"


def _num(value, missing: str = "—") -> str:
    return missing if value is None else f"{value:.1f}"


def _notes(report: dict, rows: list[dict]) -> list[str]:
    rows = [r for r in rows if "error" not in r]
    notes = [f"{budget_title(report)}; data {report['data_root']}; speed on the first "
             f"{report['timed_images']} val images at batch size 1 after a warm-up. AP and mIoU in percent.",
             *_busy(report), ""]
    notes += [f"- {r['title']}: {r['note']}" + _extra(r) for r in rows]
    different = [r["title"] for r in rows if not r.get("shared_backbone", True)]
    if different:
        notes.append(f"- Not on the shared backbone: {', '.join(different)}.")
    return notes


def _busy(report: dict) -> list[str]:
    """A warning line when other jobs shared the CPU during the run."""
    busy = max(report.get("load_average") or [0.0])
    if not report.get("cores") or busy <= report["cores"]:
        return []
    advice = "rerun on an idle machine" + (", or with --threads 1" if report["threads"] > 1 else "")
    return [f"The CPU was shared (load average up to {busy:.1f} on {report['cores']} cores): "
            f"times are inflated; {advice}."]


def _extra(row: dict) -> str:
    parts = []
    if row.get("mask_ap") is not None:
        parts.append(f"mask AP {row['mask_ap']:.1f}")
    if row.get("proposal_ms") is not None:
        cache = row.get("proposal_cache_minutes")
        built = f"cache built in {cache:.1f} min" if cache and cache > 0.05 else "cache already built"
        parts.append(f"infer ms excludes selective search ({row['proposal_ms']:.0f} ms/img, {built})")
    return "; " + "; ".join(parts) if parts else ""
