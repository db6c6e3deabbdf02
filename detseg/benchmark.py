"""Throughput measurement for detseg models and their torchvision twins on the same inputs."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from detseg.structures import Batch


@dataclass
class Throughput:
    train_ips: float  # training images per second (forward + backward + SGD step)
    infer_ips: float  # inference images per second at batch size 1


def synthetic_images(num: int, size: int, seed: int = 0, with_masks: bool = False) -> tuple[list[torch.Tensor], list[dict]]:
    """Smooth random uint8 images with 1-4 random boxes each (labels 1..5); ``with_masks``: each box
    filled as its instance mask (uint8 [n, size, size])."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(num):
        low = torch.rand(1, 3, max(size // 16, 1), max(size // 16, 1), generator=g)
        img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")[0]
        images.append((img * 255).to(torch.uint8))
        n = int(torch.randint(1, 5, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * size * 0.6
        wh = torch.rand(n, 2, generator=g) * size * 0.3 + 16
        targets.append({"boxes": torch.cat([xy, (xy + wh).clamp(max=size)], 1), "labels": torch.randint(1, 6, (n,), generator=g)})
        if with_masks:
            targets[-1]["masks"] = box_masks(targets[-1]["boxes"], size)
    return images, targets


def box_masks(boxes: torch.Tensor, size: int) -> torch.Tensor:
    pixels = torch.arange(size) + 0.5
    inside_x = (pixels[None, :] >= boxes[:, 0:1]) & (pixels[None, :] < boxes[:, 2:3])
    inside_y = (pixels[None, :] >= boxes[:, 1:2]) & (pixels[None, :] < boxes[:, 3:4])
    return (inside_y[:, :, None] & inside_x[:, None, :]).to(torch.uint8)


def to_batch(images: list[torch.Tensor], targets: list[dict]) -> Batch:
    sizes = [tuple(i.shape[1:]) for i in images]
    return Batch(
        images=torch.stack(images), image_sizes=sizes, orig_sizes=sizes, image_ids=list(range(len(images))),
        boxes=[t["boxes"] for t in targets], labels=[t["labels"] - 1 for t in targets],
        iscrowd=[torch.zeros(len(t["boxes"]), dtype=torch.bool) for t in targets],
        masks=[t["masks"] for t in targets] if "masks" in targets[0] else None,
    )


def _timed(step, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - start) / iters


def measure(train_loss, predict_one, params, batch_size: int, num_inputs: int, iters: int, warmup: int = 2,
            set_mode=None) -> Throughput:
    """Time SGD steps on ``train_loss()`` and single-image ``predict_one(i)`` calls, model-agnostic."""
    optimizer = torch.optim.SGD([p for p in params if p.requires_grad], lr=1e-4, momentum=0.9)

    def train_step():
        loss = train_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    set_mode(True)
    train_time = _timed(train_step, iters, warmup)
    set_mode(False)
    counter = iter(range(10**9))
    with torch.no_grad():
        infer_time = _timed(lambda: predict_one(next(counter) % num_inputs), iters * 2, warmup)
    return Throughput(batch_size / train_time, 1 / infer_time)


def measure_detseg(model, images, targets, batch_size: int, iters: int) -> Throughput:
    batch = to_batch(images[:batch_size], targets[:batch_size])
    singles = [to_batch([img], [t]) for img, t in zip(images, targets)]
    return measure(
        lambda: sum(model(batch, mode="loss").values()),
        lambda i: model(singles[i], mode="predict"),
        model.parameters(), batch_size, len(singles), iters, set_mode=model.train,
    )


def measure_torchvision(model, images, targets, batch_size: int, iters: int) -> Throughput:
    """torchvision's detectors take float [0, 1] images and do their own normalisation."""
    floats = [img.float() / 255 for img in images]
    return measure(
        lambda: sum(model(floats[:batch_size], targets[:batch_size]).values()),
        lambda i: model([floats[i]]),
        model.parameters(), batch_size, len(floats), iters, set_mode=model.train,
    )
