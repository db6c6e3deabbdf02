"""Each plot function (detseg.reports.plots) writes a PNG that PIL opens; history parsing (reports.history)."""
import json

import numpy as np
import pytest
from PIL import Image

from detseg.reports import history, plots

NAMES = ["circle", "square", "triangle"]


def _check_png(path, min_size=(300, 200)):
    assert path.is_file() and path.stat().st_size > 5_000  # an empty Agg canvas is ~2 KB
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_size[0] and image.height >= min_size[1]
        assert image.width <= 2500 and image.height <= 2500
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5  # something was drawn, not a blank canvas


def test_loss_curves(tmp_path):
    iters = [10, 20, 30, 40]
    train = {"loss": (iters, [2.0, 1.5, 1.2, 1.0]), "loss_roi_cls": (iters, [1.0, 0.8, 0.6, 0.5]),
             "loss_rpn_box": (iters, [0.1, 0.08, 0.07, 0.05])}
    val = {"loss": ([20, 40], [1.6, 1.1]), "loss_roi_cls": ([20, 40], [0.9, 0.6])}
    _check_png(plots.plot_loss_curves(train, val, tmp_path / "loss.png"), (1000, 250))


def test_learning_rate_and_metric_history(tmp_path):
    _check_png(plots.plot_learning_rate([1, 2, 3, 4], [0.001, 0.01, 0.01, 0.001], tmp_path / "lr.png"))
    series = {"bbox/AP": ([100, 200], [10.0, 30.0]), "bbox/AP50": ([100, 200], [20.0, 50.0])}
    _check_png(plots.plot_metric_history(series, tmp_path / "ap.png"))


def test_pr_curves(tmp_path):
    recall = np.linspace(0, 1, 101)
    precision = {"circle": np.clip(1.2 - recall, 0, 1).tolist(), "square": (1 - recall**2).tolist()}
    _check_png(plots.plot_pr_curves(recall, precision, tmp_path / "pr.png", iou=0.5), (500, 400))


def test_pr_curves_without_any_class_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no precision-recall"):
        plots.plot_pr_curves(np.linspace(0, 1, 101), {}, tmp_path / "pr.png")


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix(tmp_path, normalize):
    matrix = [[5, 1, 0, 2], [0, 7, 1, 1], [1, 0, 4, 3], [1, 2, 0, 0]]
    path = plots.plot_confusion_matrix(matrix, [*NAMES, "background"], tmp_path / "cm.png", normalize=normalize)
    _check_png(path, (500, 400))


def test_confusion_matrix_checks_its_shape(tmp_path):
    with pytest.raises(ValueError, match="does not fit 3 names"):
        plots.plot_confusion_matrix(np.zeros((4, 4)), NAMES, tmp_path / "cm.png")


def test_label_plots(tmp_path):
    rng = np.random.default_rng(0)
    widths, heights = rng.uniform(5, 80, 300), rng.uniform(5, 80, 300)
    _check_png(plots.plot_class_counts(NAMES, [120, 80, 100], tmp_path / "counts.png"))
    _check_png(plots.plot_box_sizes(widths, heights, tmp_path / "sizes.png"))
    _check_png(plots.plot_aspect_ratios(widths, heights, tmp_path / "aspect.png"))


def test_history_keeps_the_last_record_per_iteration_and_skips_a_torn_line(tmp_path):
    lines = [
        {"type": "train", "iter": 10, "lr": 0.01, "loss": 2.0, "loss_a": 1.5, "time": 0.1},
        {"type": "train", "iter": 20, "lr": 0.02, "loss": 1.8, "loss_a": 1.4, "time": 0.1},
        {"type": "eval", "iter": 20, "bbox": {"AP": 5.0, "AP50": 9.0, "AP75": 4.0, "APs": 1.0, "AP-circle": 3.0},
         "val_loss": {"loss": 1.9, "loss_a": 1.45}},
        {"type": "train", "iter": 20, "lr": 0.02, "loss": 1.7, "loss_a": 1.3, "time": 0.1},  # resumed run
        {"type": "eval", "iter": 30, "sem_seg": {"mIoU": 40.0, "pACC": 80.0, "IoU-circle": 1.0}},
        {"type": "eval", "iter": 40, "classification": {"top1": 50.0, "top5": 90.0}},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"type": "train", "it')
    train, evals = history.read_history(path)
    assert [r["iter"] for r in train] == [10, 20] and train[1]["loss"] == 1.7
    assert history.train_losses(train) == {"loss": ([10, 20], [2.0, 1.7]), "loss_a": ([10, 20], [1.5, 1.3])}
    assert history.learning_rate(train) == ([10, 20], [0.01, 0.02])
    assert history.val_losses(evals) == {"loss": ([20], [1.9]), "loss_a": ([20], [1.45])}
    assert history.eval_metrics(evals) == {
        "bbox/AP": ([20], [5.0]), "bbox/AP50": ([20], [9.0]), "bbox/AP75": ([20], [4.0]),
        "sem_seg/mIoU": ([30], [40.0]),
        "classification/top1": ([40], [50.0]), "classification/top5": ([40], [90.0]),  # no headline: all
    }


def test_metrics_table_shows_per_class_ap50_and_small_validation_losses():
    from detseg.evaluation.table import format_metrics_table

    table = format_metrics_table({"bbox": {"AP": 12.345, "AP-circle": 10.0, "AP50-circle": 20.0},
                                  "val_loss": {"loss": 1.23456, "loss_rpn_box": 0.004321}})
    assert "12.35" in table and "AP50" in table.split("category")[1]
    assert "0.004321" in table and "1.235" in table  # not "0.00": losses are not percent


def test_label_statistics_of_an_image_classification_set_count_images(tmp_path):
    from detseg.reports.labels import label_statistics
    from detseg.reports.run import write_json, write_plots

    class Folders:  # what an ImageFolder-style dataset offers: image ids and a label per image
        class_names, image_ids = ["cat", "dog"], [0, 1, 2, 3, 4]

        def label_of(self, image_id):
            return [0, 1, 1, 1, 0][image_id]

    stats = label_statistics(Folders())
    assert stats == {"names": ["cat", "dog"], "counts": [2, 3], "num_images": 5}
    write_json(tmp_path, "labels.json", stats)
    assert [p.name for p in write_plots(tmp_path)] == ["labels_instances.png"]  # no boxes, no size plots
    assert label_statistics(object()) is None
