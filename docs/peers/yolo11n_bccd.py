"""The ultralytics peer of docs/real_data.md: yolo11n from scratch for a wall-clock budget on BCCD
trainval, scored with pycocotools on the same COCO json of BCCD test that detseg is scored on.

Not part of detseg (ultralytics is not a dependency); run it in its own venv:
    python -m venv /tmp/yolo && /tmp/yolo/bin/pip install ultralytics pycocotools
    python tools/convert_dataset.py --from voc --to yolo --input data/bccd --output /tmp/bccd_yolo \
        --splits trainval test --skip-bad
    python tools/convert_dataset.py --from voc --to coco --input data/bccd --output /tmp/bccd_coco \
        --splits trainval test --skip-bad
    /tmp/yolo/bin/python docs/peers/yolo11n_bccd.py /tmp/bccd_yolo /tmp/bccd_coco/annotations/instances_test.json \
        --minutes 10 --output-dir /tmp/yolo_run
ultralytics' default recipe at 320 px, except: no pretrained weights (none can be downloaded here), no
validation during training (so all of the budget trains; the comparison favours the peer) and no plots.
"""
import argparse
import contextlib
import io
import json
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from ultralytics import YOLO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("yolo_root", type=Path, help="tools/convert_dataset.py --to yolo output (trainval, test)")
    parser.add_argument("test_json", type=Path, help="the COCO json of the test split")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--input-size", type=int, default=320)
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args()
    names = json.loads(json.dumps(__import__("yaml").safe_load((args.yolo_root / "data.yaml").read_text())["names"]))
    data_yaml = args.output_dir / "data.yaml"
    args.output_dir.mkdir(parents=True, exist_ok=True)
    data_yaml.write_text(json.dumps({"path": str(args.yolo_root.resolve()), "train": "images/trainval",
                                     "val": "images/test", "names": names}))
    model = YOLO("yolo11n.yaml")
    model.train(data=str(data_yaml), imgsz=args.input_size, time=args.minutes / 60, device="cpu", pretrained=False,
                val=False, plots=False, workers=2, project=str(args.output_dir), name="train", exist_ok=True)
    print(json.dumps(score(model, args.yolo_root / "images/test", args.test_json, args.input_size), indent=1))


def score(model, image_dir: Path, test_json: Path, size: int) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(test_json))
    id_of = {img["file_name"]: img["id"] for img in gt.dataset["images"]}
    cat_of = {c["name"]: c["id"] for c in gt.dataset["categories"]}
    results = []
    for name, image_id in id_of.items():
        pred = model.predict(str(image_dir / name), imgsz=size, conf=0.001, iou=0.7, max_det=300, verbose=False)[0]
        for (x1, y1, x2, y2), s, c in zip(pred.boxes.xyxy.tolist(), pred.boxes.conf.tolist(), pred.boxes.cls.tolist()):
            results.append({"image_id": image_id, "category_id": cat_of[pred.names[int(c)]],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s})
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, -1]
        per_class[gt.cats[cat]["name"]] = round(100 * float(p[p > -1].mean()), 1)
    return {"AP": round(100 * ev.stats[0], 1), "AP50": round(100 * ev.stats[1], 1), "per_class_AP": per_class}


if __name__ == "__main__":
    main()
