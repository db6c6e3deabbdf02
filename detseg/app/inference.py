"""A model run over a loader in eval mode: the predictions (and, when asked, the validation loss)."""
from __future__ import annotations

import contextlib
import sys

import torch
from tqdm import tqdm

from detseg.engine import precision
from detseg.evaluation.val_loss import ValidationLoss


@torch.no_grad()
def run_inference(model, loader, device, progress: bool = True, val_loss: ValidationLoss | None = None,
                  train_cfg=None):
    """Yields ``(batch, predictions)`` in dataset order, predictions on the CPU. With ``val_loss`` the
    model runs in "both" mode and each batch's losses are added to it (no second forward pass).
    ``train_cfg``: the config's ``train`` section, whose ``amp`` setting the forward passes follow."""
    model.eval()
    interval = 0.1 if sys.stderr.isatty() else 10.0
    for batch in tqdm(loader, desc="inference", disable=not progress, leave=False, mininterval=interval):
        with precision.autocast(train_cfg, device) if train_cfg is not None else contextlib.nullcontext():
            if val_loss is None:
                predictions = model(batch.to(device), mode="predict")
            else:
                losses, predictions = model(batch.to(device), mode="both")
                val_loss.update(losses, len(batch))
        yield batch, [p.to("cpu") for p in predictions]
