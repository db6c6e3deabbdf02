"""torchvision's ``batched_nms`` with its per-group NMS calls spread over the CPU's threads.

For many boxes on the CPU, ``torchvision.ops.batched_nms`` runs one ``nms`` per group (class, or image
and class, or RPN level) in turn, on one core: for SSD300's 90 classes x 400 candidates a fifth of a
prediction. Groups are independent and the kernel releases the GIL, so the groups are dealt out to a
pool of threads, each marking its groups' survivors; the kept indices, ordered by score as torchvision
orders them, are the same tensor torchvision returns. Small inputs (torchvision's own switch to one
offset-box NMS), one thread, tracing, compiling and other devices go to torchvision unchanged.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms as torchvision_batched_nms
from torchvision.ops import nms

from detseg.models.layers.call_context import capturing_graph
from detseg.models.layers.op_threads import op_executor

# torchvision's batched_nms loops over groups above this many box coordinates on the CPU
VANILLA_ABOVE = 4000


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes NMS keeps within each group, by decreasing score (torchvision's batched_nms)."""
    threads = torch.get_num_threads()
    if boxes.device.type != "cpu" or threads == 1 or boxes.numel() <= VANILLA_ABOVE or capturing_graph():
        return torchvision_batched_nms(boxes, scores, groups, iou_threshold)
    order = torch.argsort(groups, stable=True)
    counts = torch.unique_consecutive(groups[order], return_counts=True)[1].tolist()
    members = sorted(order.split(counts), key=len, reverse=True)
    keep = torch.zeros_like(scores, dtype=torch.bool)

    def run(share: list[Tensor]) -> None:
        for index in share:
            keep[index[nms(boxes[index], scores[index], iou_threshold)]] = True

    shares = [members[i::threads] for i in range(threads)]  # largest groups dealt out first
    list(op_executor(threads).map(run, [s for s in shares if s]))
    kept = torch.where(keep)[0]
    return kept[scores[kept].sort(descending=True)[1]]
