"""The one evaluation loop (detseg.app.evaluate): the evaluators each task gets, the metrics blocks in
order, the validation loss last, the files each task writes, and the model/data task rule."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from eval_batches import FakeModel, batch_of
from eval_coco_fixtures import (CATEGORY_IDS, CLASS_NAMES, detection_dataset, make_coco_gt, mixed_predictions,
                                voc_annotation)

import detseg.app.evaluate as app_evaluate
from detseg.app.evaluate import build_evaluators, evaluate
from detseg.app.task import require_matching_task
from detseg.config import Config
from detseg.evaluation import (ClassificationEvaluator, CocoEvaluator, Evaluator, SemSegEvaluator,
                               VocEvaluator)

CPU = torch.device("cpu")


def _cfg(data_format: str = "coco", arch: str = "faster_rcnn") -> Config:
    cfg = Config()
    cfg.data.format, cfg.model.arch, cfg.train.device = data_format, arch, "cpu"
    return cfg


def _feed(monkeypatch, *batches) -> None:
    monkeypatch.setattr(app_evaluate, "eval_loader", lambda cfg, dataset: list(batches))


def test_every_evaluator_follows_the_protocol():
    evaluators = [CocoEvaluator(make_coco_gt(), CATEGORY_IDS), VocEvaluator(CLASS_NAMES, voc_annotation),
                  SemSegEvaluator(["background", "a"], lambda i: np.zeros((1, 1))), ClassificationEvaluator(3)]
    assert all(isinstance(e, Evaluator) for e in evaluators)


def test_each_task_gets_its_evaluators():
    detector = FakeModel(None)
    assert [type(e) for e in build_evaluators(detector, detection_dataset(), _cfg())] == [CocoEvaluator]
    assert [type(e) for e in build_evaluators(detector, detection_dataset(), _cfg("voc"))] == [CocoEvaluator,
                                                                                            VocEvaluator]
    detector.has_masks = True
    assert build_evaluators(detector, detection_dataset(), _cfg())[0].iou_types == ("bbox", "segm")
    semantic = SimpleNamespace(with_sem_seg=True, class_names=["a", "b"], original_sem_seg=lambda i: None)
    (seg,) = build_evaluators(FakeModel(None, "semantic"), semantic, _cfg(arch="fcn"))
    assert isinstance(seg, SemSegEvaluator) and seg.class_names == ["background", "a", "b"]
    classifier = FakeModel(None, "classification")
    classifier.fc = torch.nn.Linear(4, 3)
    folders = SimpleNamespace(label_of=lambda i: 0, class_names=["x", "y", "z"])
    (cls,) = build_evaluators(classifier, folders, _cfg("imagefolder", "classifier"))
    assert isinstance(cls, ClassificationEvaluator) and cls.num_classes == 3


def test_model_and_data_tasks_must_agree():
    with pytest.raises(ValueError, match="model.arch 'classifier' goes with data.task 'classification'"):
        require_matching_task("classification", "detection", "classifier")
    with pytest.raises(ValueError, match="model.arch 'classifier' goes with data.task 'classification'"):
        require_matching_task("detection", "classification", "faster_rcnn")
    with pytest.raises(ValueError, match="set data.task=semantic"):
        require_matching_task("semantic", "detection", "fcn")
    require_matching_task("detection", "semantic", "mask_rcnn")  # the boxes are there too
    with pytest.raises(ValueError, match="set data.task=semantic"):
        build_evaluators(FakeModel(None, "semantic"), detection_dataset(), _cfg(arch="fcn"))
    folders = SimpleNamespace(label_of=lambda i: 0, class_names=["x", "y"])
    classifier = FakeModel(None, "classification")
    cfg = _cfg("imagefolder", "classifier")
    cfg.model.class_names = ["y", "x"]
    with pytest.raises(ValueError, match=r"classes \['x', 'y'\] differ from the model's \['y', 'x'\]"):
        build_evaluators(classifier, folders, cfg)


def test_detection_blocks_loss_and_files(monkeypatch, tmp_path):
    predictions = mixed_predictions()
    _feed(monkeypatch, batch_of([1, 2]), batch_of([3, 4]))
    model = FakeModel(predictions.__getitem__)
    metrics = evaluate(model, detection_dataset(), _cfg("voc"), CPU, tmp_path / "a", with_loss=True)
    assert list(metrics) == ["bbox", "voc", "val_loss"]
    assert metrics["val_loss"] == {"loss": 0.5, "loss_fake": 0.5}
    reference = CocoEvaluator(make_coco_gt(), CATEGORY_IDS, CLASS_NAMES)
    reference.process(batch_of(list(predictions)), list(predictions.values()))
    np.testing.assert_array_equal(list(metrics["bbox"].values()), list(reference.evaluate()["bbox"].values()))
    written = {p.name for p in (tmp_path / "a").iterdir()}
    assert written == {"metrics.json", "pr_curves.json", "confusion_matrix.json", "predictions.json"}
    assert json.loads((tmp_path / "a" / "predictions.json").read_text()) == json.loads(
        json.dumps(reference.results))
    assert list(json.loads((tmp_path / "a" / "metrics.json").read_text())) == ["bbox", "voc", "val_loss"]
    evaluate(model, detection_dataset(), _cfg(), CPU, tmp_path / "b", write_predictions=False)
    assert {p.name for p in (tmp_path / "b").iterdir()} == {"metrics.json", "pr_curves.json",
                                                            "confusion_matrix.json"}


def test_semantic_and_classification_write_only_metrics(monkeypatch, tmp_path):
    label_maps = {0: np.array([[1]]), 1: np.array([[0]])}
    semantic = SimpleNamespace(with_sem_seg=True, class_names=["a"], original_sem_seg=label_maps.__getitem__)
    _feed(monkeypatch, batch_of([0, 1]))
    model = FakeModel(lambda i: torch.ones(1, 1, dtype=torch.int64), "semantic")
    metrics = evaluate(model, semantic, _cfg(arch="fcn"), CPU, tmp_path / "seg", with_loss=True)
    assert list(metrics) == ["sem_seg", "val_loss"] and metrics["sem_seg"]["pACC"] == 50.0
    assert json.loads((tmp_path / "seg" / "metrics.json").read_text()) == metrics
    assert [p.name for p in (tmp_path / "seg").iterdir()] == ["metrics.json"]

    folders = SimpleNamespace(label_of=lambda i: 0, class_names=["x", "y", "z"])
    _feed(monkeypatch, batch_of([0, 1], class_labels=torch.tensor([2, 0])))
    classifier = FakeModel(lambda i: torch.tensor([0.1, 0.2, 0.7]), "classification")
    classifier.fc = torch.nn.Linear(4, 3)
    metrics = evaluate(classifier, folders, _cfg("imagefolder", "classifier"), CPU, tmp_path / "cls")
    assert metrics == {"classification": {"top1": 50.0, "top5": 100.0, "num_images": 2}}
    assert json.loads((tmp_path / "cls" / "metrics.json").read_text()) == metrics
    assert [p.name for p in (tmp_path / "cls").iterdir()] == ["metrics.json"]
