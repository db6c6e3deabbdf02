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
        targets[-1]["sem_seg"] = semantic_map(targets[-1], size)
    return images, targets


def semantic_map(target: dict, size: int) -> torch.Tensor:
    """int64 [size, size]: each box's interior painted with its label (1..5; 0 = background), later on top."""
    labels = target["labels"][:, None, None]
    painted = box_masks(target["boxes"], size).bool()
    layers = torch.where(painted, labels, torch.zeros_like(labels))
    order = torch.arange(1, len(labels) + 1)[:, None, None] * painted  # the last box covering a pixel wins
    return layers.gather(0, order.argmax(0, keepdim=True))[0] if len(labels) else torch.zeros(size, size, dtype=torch.int64)


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
        sem_seg=torch.stack([t["sem_seg"] for t in targets]),
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


def measure_torchvision_segmentation(model, images, targets, batch_size: int, iters: int) -> Throughput:
    """torchvision's FCN: normalised float batches in, {"out", "aux"} logits out; its training loss is
    cross-entropy on "out" plus 0.5 x on "aux" (its reference script)."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    floats = [((img.float() / 255)[None] - mean) / std for img in images]
    batch = torch.cat(floats[:batch_size])
    labels = torch.stack([t["sem_seg"] for t in targets[:batch_size]])

    def train_loss():
        out = model(batch)
        loss = torch.nn.functional.cross_entropy(out["out"], labels, ignore_index=255)
        if "aux" in out:
            loss = loss + 0.5 * torch.nn.functional.cross_entropy(out["aux"], labels, ignore_index=255)
        return loss

    return measure(train_loss, lambda i: model(floats[i])["out"].argmax(1), model.parameters(), batch_size,
                   len(floats), iters, set_mode=model.train)


def measure_torchvision(model, images, targets, batch_size: int, iters: int) -> Throughput:
    """torchvision's detectors take float [0, 1] images and do their own normalisation."""
    floats = [img.float() / 255 for img in images]
    return measure(
        lambda: sum(model(floats[:batch_size], targets[:batch_size]).values()),
        lambda i: model([floats[i]]),
        model.parameters(), batch_size, len(floats), iters, set_mode=model.train,
    )
