"""Faster R-CNN R50-FPN at COCO's 800x1333 on a GPU: detseg with bf16 autocast and channels_last (its
train.amp / train.channels_last) beside torchvision under the same autocast and memory format."""
from __future__ import annotations

import torch

from detseg.benchmarks.throughput import synthetic_images
from detseg.benchmarks.compare import detseg_contender, load_model_config, torchvision_contender
from detseg.benchmarks.timing import interleaved_medians

NAME = "faster_rcnn_r50_fpn"


def wide_images(num: int, height: int, width: int) -> tuple[list[torch.Tensor], list[dict]]:
    """synthetic_images stretched from height x height to height x width, boxes stretched alike."""
    images, targets = synthetic_images(num, height)
    stretch = torch.tensor([width / height, 1.0, width / height, 1.0])
    wide = [torch.nn.functional.interpolate(img[None].float(), size=(height, width), mode="bilinear")[0]
            .round().to(torch.uint8) for img in images]
    def sem_seg(t):  # the Batch carries one even for a detector
        return torch.nn.functional.interpolate(t["sem_seg"][None, None].float(), size=(height, width))[0, 0].long()

    return wide, [{"boxes": t["boxes"] * stretch, "labels": t["labels"], "sem_seg": sem_seg(t)} for t in targets]


def gpu_figures(rounds: int = 5, batch_size: int = 2, height: int = 800, width: int = 1333,
                device: str = "cuda") -> dict:
    cfg = load_model_config(NAME, ("train.amp=bf16", "train.channels_last=true"))
    torch.manual_seed(0)
    images, targets = wide_images(batch_size, height, width)
    sides = {"detseg": detseg_contender(cfg, images, targets, batch_size, device, amp=True),
             # min_size = max_size = the long side: torchvision's resize leaves height x width as it is
             "torchvision": torchvision_contender(cfg, images, targets, batch_size, width, device, amp=True)}
    train = interleaved_medians({k: s.train_step for k, s in sides.items()}, rounds, 3)
    infer = interleaved_medians({k: s.predict_one for k, s in sides.items()}, rounds, 5)
    result = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else device,
              "size": [height, width], "batch_size": batch_size, "amp": "bf16", "channels_last": True}
    for side in sides:
        result[side] = {"train_ips": batch_size / train[side], "infer_ips": 1 / infer[side]}
    result["train_ratio"] = result["detseg"]["train_ips"] / result["torchvision"]["train_ips"]
    result["infer_ratio"] = result["detseg"]["infer_ips"] / result["torchvision"]["infer_ips"]
    return result
