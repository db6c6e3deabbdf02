"""The zoo's report files: zoo.md (the table and its notes), zoo.json (every number), zoo.png (zoo_plot)."""
from __future__ import annotations

import json
from pathlib import Path

from detseg.benchmarks.zoo_plot import plot_zoo

HEADER = ("| Architecture | Config | Backbone | Head input | Box AP | AP50 (FCN: mIoU) | Train min (iters) "
          "| Infer ms/img | Proposals ms/img | Params (M) | GFLOPs | Test input |")


def write_zoo(report: dict, output_dir: str | Path, json_path: str | Path | None = None) -> list[Path]:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, allow_nan=False)  # the rows hold None, never NaN
    written = [out / "zoo.json", out / "zoo.md"]
    written[0].write_text(text)
    written[1].write_text(format_zoo_markdown(report))
    if any("error" not in r for r in report["rows"]):
        written.append(plot_zoo(report["rows"], out / "zoo.png", title=budget_title(report)))
    if json_path:
        Path(json_path).write_text(text)
        written.append(Path(json_path))
    return written


def budget_title(report: dict) -> str:
    budget = f"{report['iters']} iterations" if report.get("iters") else f"{report['minutes']:g} min"
    threads = f"{report['threads']} thread" + ("s" if report["threads"] != 1 else "")
    return f"detseg zoo on shapes: {budget} of CPU training each, {threads}"


def format_zoo_markdown(report: dict) -> str:
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    lines += [_table_row(r) for r in report["rows"]]
    return "\n".join([*lines, "", *_notes(report)]) + "\n"


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


def _notes(report: dict) -> list[str]:
    rows = [r for r in report["rows"] if "error" not in r]
    notes = [f"{budget_title(report)}; data {report['data_root']}; speed on the first "
             f"{report['timed_images']} val images at batch size 1 after a warm-up. AP and mIoU in percent.", ""]
    busy = max(report.get("load_average") or [0.0])
    if report.get("cores") and busy > report["cores"]:
        advice = "rerun on an idle machine" + (", or with --threads 1" if report["threads"] > 1 else "")
        notes.insert(1, f"The CPU was shared (load average up to {busy:.1f} on {report['cores']} cores): "
                        f"times are inflated; {advice}.")
    notes += [f"- {r['title']}: {r['note']}" + _extra(r) for r in rows]
    different = [r["title"] for r in rows if not r.get("shared_backbone", True)]
    if different:
        notes.append(f"- Not on the shared backbone: {', '.join(different)}.")
    return notes


def _extra(row: dict) -> str:
    parts = []
    if row.get("mask_ap") is not None:
        parts.append(f"mask AP {row['mask_ap']:.1f}")
    if row.get("proposal_ms") is not None:
        cache = row.get("proposal_cache_minutes")
        built = f"cache built in {cache:.1f} min" if cache and cache > 0.05 else "cache already built"
        parts.append(f"infer ms excludes selective search ({row['proposal_ms']:.0f} ms/img, {built})")
    return "; " + "; ".join(parts) if parts else ""
