"""Run a trained model on images:
python tools/infer.py CONFIG --checkpoint CKPT --input PATH [PATH ...] --output-dir DIR [--score-threshold T]
python tools/infer.py RUN_DIR --input PATH [PATH ...] --output-dir DIR  (the run's config.yaml and best.pt)

Writes DIR/<image name>.jpg with boxes, class names and scores drawn (Mask R-CNN: masks blended under
them, one colour per instance), and DIR/predictions.json (masks as COCO RLE).
Semantic models (arch fcn) write DIR/<image name>.jpg with a semi-transparent class colour overlay
and DIR/<image name>.png, the class map as a VOC palette PNG (0 = background, c + 1 = class c).
Videos (.mp4 .avi .mov .mkv) give DIR/<name>.<same suffix>: every frame annotated, same frame count
and fps; the frames per second of processing are printed. Folders are searched recursively and their
files keep their sub-path: DIR/a/x.jpg and DIR/b/x.jpg for FOLDER/a/x.jpg and FOLDER/b/x.jpg.
--save-txt also writes DIR/labels/<name>.txt (videos: <name>_<frame, from 0>.txt), one
'class cx cy w h score' line per detection, box values normalised by the image width and height.
A file that is not a readable image is reported and skipped; the others are still processed.
--backend onnxruntime runs a model exported by tools/export.py: --checkpoint is then the .onnx file.
"""
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from detseg.cli.common import config_parser, load, run_checkpoint, run_main, writable_folder
from tqdm import tqdm

from detseg.data.datasets.base import read_rgb
from detseg.data.errors import DatasetError
from detseg.export.onnx_runtime import OnnxPredictor
from detseg.app.media import InputFile, VideoSink, collect_inputs, read_frames, yolo_lines
from detseg.app.predictor import Predictor
from detseg.evaluation.coco import encode_masks
from detseg.reports.visualization import draw_instances, draw_semantic


def output_path(out_dir: Path, item: InputFile, suffix: str, overwrite: bool) -> Path:
    target = (out_dir / f"{item.name}{suffix}").resolve()
    if not target.is_relative_to(out_dir.resolve()):
        raise ValueError(f"{item.path}: output name would leave {out_dir}")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def build_parser():
    parser = config_parser(__doc__)
    parser.add_argument("--checkpoint",
                        help="detseg checkpoint (default with a run folder as CONFIG: its best.pt, else last.pt); "
                             "an .onnx file with --backend onnxruntime")
    parser.add_argument("--backend", choices=["pytorch", "onnxruntime"], default="pytorch",
                        help="onnxruntime: --checkpoint is an .onnx file written by tools/export.py")
    parser.add_argument("--input", nargs="+", required=True,
                        help="image / video files and/or folders (searched recursively)")
    parser.add_argument("--output-dir", required=True,
                        help="folder for the drawn images / videos and predictions.json")
    parser.add_argument("--score-threshold", type=float, default=0.5,
                        help="draw and save detections scoring at least this (default: 0.5)")
    parser.add_argument("--limit", type=int, default=None, help="process at most this many images / videos")
    parser.add_argument("--save-txt", action="store_true",
                        help="also write DIR/labels/<name>.txt: 'class cx cy w h score' lines, normalised")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs in --output-dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    cfg = load(args)
    checkpoint = run_checkpoint(args)
    files = collect_inputs(args.input)[: args.limit]
    if not files:
        raise FileNotFoundError(f"no images or videos found in {' '.join(args.input)}")
    writable_folder(args.output_dir)  # before the model loads
    backend = OnnxPredictor if args.backend == "onnxruntime" else Predictor
    predictor = backend(cfg, checkpoint)
    if args.save_txt and predictor.task == "semantic":
        raise ValueError("--save-txt writes boxes; a semantic model (arch fcn) has none")
    out_dir = Path(args.output_dir)
    if (out_dir / "predictions.json").exists() and not args.overwrite:
        raise FileExistsError(f"{out_dir / 'predictions.json'} exists; pass --overwrite to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    records, failures = process_all(predictor, files, out_dir, args)
    (out_dir / "predictions.json").write_text(json.dumps(records, indent=1))
    rate = len(files) / max(time.perf_counter() - start, 1e-9)
    videos = sum("video" in r for r in records)  # their frames per second were printed per video
    written = f"{len(records) - videos} images and {videos} videos" if videos else f"{len(records)} images"
    print(f"{written} written to {out_dir}, {failures} skipped ({rate:.1f} {'files' if videos else 'images'}/s)")
    hint = below_threshold_hint(records, args.score_threshold)
    if hint:
        print(hint)
    return 1 if failures and not records else 0


def process_all(predictor, files: list[InputFile], out_dir: Path, args) -> tuple[list[dict], int]:
    """Every input through the model; one that cannot be read is reported and skipped, the rest go on."""
    records, failures = [], 0
    for item in tqdm(files, desc="infer", mininterval=1.0 if sys.stderr.isatty() else 30.0):
        try:
            process = process_video if item.is_video else process_one
            records.append(process(predictor, item, out_dir, args))
        except (DatasetError, FileExistsError, ValueError) as exc:
            failures += 1
            named = str(exc).startswith(str(item.path))  # most messages already start with the file
            # tqdm.write: a line of its own, not glued to the progress bar
            tqdm.write(f"skipped {exc}" if named else f"skipped {item.path}: {exc}", file=sys.stderr)
    return records, failures


def below_threshold_hint(records: list[dict], threshold: float) -> str | None:
    """One line when images came out empty only because every detection scored under the threshold."""
    hidden = [r for r in records if "best_score_below_threshold" in r]
    if not hidden:
        return None
    best = max(hidden, key=lambda r: r["best_score_below_threshold"])
    return (f"{len(hidden)} of {len(records)} images show no detection because all of theirs scored below "
            f"--score-threshold {threshold:g} (best {best['best_score_below_threshold']:.3f}, in "
            f"{best['file_name']}); pass a lower --score-threshold to draw them")


def process_one(predictor: Predictor, item: InputFile, out_dir: Path, args) -> dict:
    image = read_rgb(str(item.path))
    if predictor.task == "semantic":
        return process_semantic(predictor, image, item, out_dir, args)
    drawn, record, lines = detect(predictor, image, args)
    cv2.imwrite(str(output_path(out_dir, item, ".jpg", args.overwrite)), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    if args.save_txt:
        write_txt(out_dir, item, "", lines, args.overwrite)
    return {"file_name": str(item.path), **record}


def process_video(predictor: Predictor, item: InputFile, out_dir: Path, args) -> dict:
    """Every frame through the model and drawn into a video of the same size, frame count and fps."""
    frames, fps, count = read_frames(item.path)
    sink = VideoSink(output_path(out_dir, item, item.path.suffix.lower(), args.overwrite), fps)
    records, start = [], time.perf_counter()
    try:
        for index, frame in enumerate(tqdm(frames, desc=item.path.name, total=count or None, leave=False,
                                           mininterval=1.0 if sys.stderr.isatty() else 30.0)):
            if predictor.task == "semantic":
                labels = predictor(frame).numpy()
                drawn, record = draw_semantic(frame, labels), {"pixels": class_pixels(predictor, labels)}
            else:
                drawn, record, lines = detect(predictor, frame, args)
                if args.save_txt:
                    write_txt(out_dir, item, f"_{index:06d}", lines, args.overwrite)
            sink.write(drawn)
            records.append({"frame": index, **record})
    finally:
        sink.close()
    if not records:
        raise ValueError("no frame could be decoded")
    rate = len(records) / max(time.perf_counter() - start, 1e-9)
    print(f"{item.path}: {len(records)} frames at {fps:g} fps -> {sink.path} ({rate:.1f} frames/s processed)")
    return {"file_name": str(item.path), "video": str(sink.path), "fps": fps, "frames": records}


def write_txt(out_dir: Path, item: InputFile, tag: str, lines: list[str], overwrite: bool) -> None:
    labels = InputFile(item.path, item.name.with_name(item.name.name + tag))
    target = output_path(out_dir / "labels", labels, ".txt", overwrite)
    target.write_text("".join(f"{line}\n" for line in lines))


def detect(predictor: Predictor, image: np.ndarray, args) -> tuple[np.ndarray, dict, list[str]]:
    """(drawn RGB image, predictions.json record, --save-txt lines)."""
    everything = predictor(image)
    instances = everything[everything.scores >= args.score_threshold]
    hidden = ({"best_score_below_threshold": round(float(everything.scores.max()), 4)}
              if len(everything) and not len(instances) else {})
    drawn = draw_instances(image, instances, predictor.class_names)
    ids = category_ids(predictor)
    lines = yolo_lines(instances.boxes.numpy(), instances.scores.numpy(), instances.labels.numpy(), image.shape[:2])
    return drawn, {
        "boxes": [[round(v, 2) for v in box] for box in instances.boxes.tolist()],
        "scores": [round(s, 4) for s in instances.scores.tolist()],
        "labels": instances.labels.tolist(),  # the model's contiguous class indices
        "category_ids": [ids[i] for i in instances.labels.tolist()],  # the dataset's, as eval writes them
        "class_names": [predictor.class_names[i] for i in instances.labels.tolist()],
        **({"masks": encode_masks(instances.masks)} if instances.masks is not None else {}),
        **hidden,
    }, lines


def category_ids(predictor) -> list[int]:
    """The training data's category id of each class (COCO's ids, stored with the run); 1..K where the
    data has none of its own (VOC, shapes), the ids eval's predictions.json uses for them."""
    stored = predictor.cfg.data.category_ids
    return [int(i) for i in stored] if stored else list(range(1, len(predictor.class_names) + 1))


def process_semantic(predictor: Predictor, image, item: InputFile, out_dir: Path, args) -> dict:
    from detseg.data.palette import write_label_png

    labels = predictor(image).numpy()
    overlay = output_path(out_dir, item, ".jpg", args.overwrite)
    png = overlay.with_suffix(".png")
    if png.exists() and not args.overwrite:
        raise FileExistsError(f"{png} exists; pass --overwrite to replace it")
    cv2.imwrite(str(overlay), cv2.cvtColor(draw_semantic(image, labels), cv2.COLOR_RGB2BGR))
    write_label_png(png, labels)
    return {"file_name": str(item.path), "label_png": str(png), "pixels": class_pixels(predictor, labels)}


def class_pixels(predictor: Predictor, labels: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(labels, return_counts=True)
    return {predictor.class_names[v - 1]: int(n) for v, n in zip(values.tolist(), counts.tolist()) if v > 0}


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)
