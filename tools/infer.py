"""Run a trained model on images:
python tools/infer.py CONFIG --checkpoint CKPT --input PATH [PATH ...] --output-dir DIR [--score-threshold T]

Writes DIR/<image name>.jpg with boxes, class names and scores drawn (Mask R-CNN: masks blended under
them, one colour per instance), and DIR/predictions.json (masks as COCO RLE).
Semantic models (arch fcn) write DIR/<image name>.jpg with a semi-transparent class colour overlay
and DIR/<image name>.png, the class map as a VOC palette PNG (0 = background, c + 1 = class c).
A file that is not a readable image is reported and skipped; the others are still processed.
"""
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from _common import config_parser, load, run_main
from tqdm import tqdm

from detseg.data.datasets.base import read_rgb
from detseg.data.errors import DatasetError
from detseg.predictor import Predictor
from detseg.evaluation.coco import encode_masks
from detseg.visualization import draw_instances, draw_semantic

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def collect_inputs(paths: list[str]) -> list[Path]:
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"--input {path} does not exist")
    return files


def output_path(out_dir: Path, source: Path, overwrite: bool) -> Path:
    target = (out_dir / f"{source.stem}.jpg").resolve()
    if not target.is_relative_to(out_dir.resolve()):
        raise ValueError(f"{source}: output name would leave {out_dir}")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    return target


def main() -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", nargs="+", required=True, help="image files and/or folders")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--score-threshold", type=float, default=0.5, help="draw and save detections above this")
    parser.add_argument("--limit", type=int, default=None, help="process at most this many images")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs in --output-dir")
    args = parser.parse_intermixed_args()
    cfg = load(args)
    predictor = Predictor(cfg, args.checkpoint)
    out_dir = Path(args.output_dir)
    if (out_dir / "predictions.json").exists() and not args.overwrite:
        raise FileExistsError(f"{out_dir / 'predictions.json'} exists; pass --overwrite to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = collect_inputs(args.input)[: args.limit]
    records, failures, start = [], 0, time.perf_counter()
    for path in tqdm(files, desc="infer", mininterval=1.0 if sys.stderr.isatty() else 30.0):
        try:
            records.append(process_one(predictor, path, out_dir, args))
        except (DatasetError, FileExistsError, ValueError) as exc:
            failures += 1
            print(f"skipped {path}: {exc}", file=sys.stderr)
    (out_dir / "predictions.json").write_text(json.dumps(records, indent=1))
    rate = len(files) / max(time.perf_counter() - start, 1e-9)
    print(f"{len(records)} images written to {out_dir}, {failures} skipped ({rate:.1f} images/s)")
    return 1 if failures and not records else 0


def process_one(predictor: Predictor, path: Path, out_dir: Path, args) -> dict:
    image = read_rgb(str(path))
    if predictor.task == "semantic":
        return process_semantic(predictor, image, path, out_dir, args)
    instances = predictor(image)
    instances = instances[instances.scores >= args.score_threshold]
    drawn = draw_instances(image, instances, predictor.class_names)
    cv2.imwrite(str(output_path(out_dir, path, args.overwrite)), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    return {
        "file_name": str(path),
        "boxes": [[round(v, 2) for v in box] for box in instances.boxes.tolist()],
        "scores": [round(s, 4) for s in instances.scores.tolist()],
        "labels": instances.labels.tolist(),
        "class_names": [predictor.class_names[i] for i in instances.labels.tolist()],
        **({"masks": encode_masks(instances.masks)} if instances.masks is not None else {}),
    }


def process_semantic(predictor: Predictor, image, path: Path, out_dir: Path, args) -> dict:
    from detseg.data.palette import write_label_png

    labels = predictor(image).numpy()
    overlay = output_path(out_dir, path, args.overwrite)
    png = overlay.with_suffix(".png")
    if png.exists() and not args.overwrite:
        raise FileExistsError(f"{png} exists; pass --overwrite to replace it")
    cv2.imwrite(str(overlay), cv2.cvtColor(draw_semantic(image, labels), cv2.COLOR_RGB2BGR))
    write_label_png(png, labels)
    values, counts = np.unique(labels, return_counts=True)
    return {
        "file_name": str(path),
        "label_png": str(png),
        "pixels": {predictor.class_names[v - 1]: int(n) for v, n in zip(values.tolist(), counts.tolist()) if v > 0},
    }


if __name__ == "__main__":
    run_main(main)
