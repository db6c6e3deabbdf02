"""Top-1 / top-5 accuracy on hand-made scores, the top-k cap, and the distributed gather."""
from __future__ import annotations

import pytest
import torch

from detseg.evaluation import ClassificationEvaluator
from detseg.evaluation.table import format_metrics_table
from tests.evaluation.eval_batches import batch_of

# 7 classes; per row the label's rank among the scores is written beside it
SCORES = torch.tensor([
    [9.0, 1, 2, 3, 4, 5, 6],  # label 0: rank 1
    [1.0, 9, 8, 7, 6, 5, 4],  # label 2: rank 2
    [1.0, 2, 3, 4, 5, 6, 7],  # label 2: rank 5 (scores 7, 6, 5, 4, 3 above or equal to it)
    [7.0, 6, 5, 4, 3, 2, 1],  # label 5: rank 6
])
LABELS = torch.tensor([0, 2, 2, 5])


def labelled(labels):
    """A batch of len(labels) images with these class labels."""
    return batch_of(range(len(labels)), class_labels=labels)


def test_top1_and_top5_of_hand_made_scores():
    evaluator = ClassificationEvaluator(7)
    evaluator.process(labelled(LABELS[:2]), SCORES[:2])
    evaluator.process(labelled(LABELS[2:].tolist()), list(SCORES[2:]))  # rows as a list, labels as ints
    assert evaluator.evaluate() == {"classification": {"top1": 25.0, "top5": 75.0, "num_images": 4}}


def test_softmax_probabilities_give_the_same_numbers_as_logits():
    evaluator = ClassificationEvaluator(7)
    evaluator.process(labelled(LABELS), SCORES.softmax(dim=1))
    assert evaluator.evaluate()["classification"]["top5"] == 75.0


def test_top5_is_capped_at_the_class_count():
    evaluator = ClassificationEvaluator(3)
    evaluator.process(labelled(torch.tensor([0, 0])), torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]))
    assert evaluator.evaluate() == {"classification": {"top1": 50.0, "top5": 100.0, "num_images": 2}}


def test_bad_shapes_and_labels_are_refused():
    evaluator = ClassificationEvaluator(7)
    with pytest.raises(ValueError, match="do not match 3 labels x 7 classes"):
        evaluator.process(labelled(LABELS[:3]), SCORES)
    with pytest.raises(ValueError, match="labels outside 0..6"):
        evaluator.process(labelled(torch.tensor([7])), SCORES[:1])


def test_metrics_table_shows_the_block():
    text = format_metrics_table({"classification": {"top1": 25.0, "top5": 75.0, "num_images": 4}})
    assert "[classification]" in text and "25.00" in text and "75.00" in text


def _shard(rows: slice) -> ClassificationEvaluator:
    evaluator = ClassificationEvaluator(7)
    evaluator.process(labelled(LABELS[rows]), SCORES[rows])
    return evaluator


def test_distributed_counts_are_summed_on_rank_0(monkeypatch):
    """Two ranks with uneven shards: rank 0 sums both ranks' counts, the other rank returns {}.
    (gather_results itself runs over gloo in tests/evaluation/test_eval_distributed.py.)"""
    import detseg.evaluation.classification as module

    other_rank = _shard(slice(1, 4))
    monkeypatch.setattr(module, "gather_results", lambda mine: mine + [other_rank.counts])
    monkeypatch.setattr(module, "is_main_process", lambda: True)
    assert _shard(slice(0, 1)).evaluate() == {"classification": {"top1": 25.0, "top5": 75.0, "num_images": 4}}
    monkeypatch.setattr(module, "gather_results", lambda mine: [])
    monkeypatch.setattr(module, "is_main_process", lambda: False)
    assert other_rank.evaluate() == {}
