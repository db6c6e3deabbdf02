"""The config schema: every key a YAML file may set, with its default.

Dataclasses rather than a free dict so a typo is caught at load time with a
suggestion, and so readers see the whole surface in one file.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BackboneConfig:
    name: str = "resnet50"
    # None: random init; "DEFAULT"/"IMAGENET1K_V1"...: torchvision weight enum; a path: local state dict.
    weights: str | None = None
    # Stages before this index are frozen (0: nothing, 1: stem, 2: stem+res2, ...), as detectron2.
    freeze_at: int = 0
    # "bn": trainable BatchNorm, "frozen_bn": torchvision FrozenBatchNorm2d, "gn": GroupNorm(32).
    norm: str = "bn"
    width: float = 1.0  # channel multiplier for the small CPU backbones
    out_features: list[str] = field(default_factory=lambda: ["s4", "s8", "s16", "s32"])


@dataclass
class NeckConfig:
    name: str = "none"  # "none" | "fpn"
    out_channels: int = 256
    extra_pool: bool = True  # FPN's LastLevelMaxPool (adds s64 for the RPN)


@dataclass
class RPNConfig:
    in_features: list[str] = field(default_factory=lambda: ["s4", "s8", "s16", "s32", "s64"])
    # One list of sizes per feature map: [[32], [64], ...] with FPN, [[128, 256, 512]] on one map.
    anchor_sizes: list[list[float]] = field(default_factory=lambda: [[32], [64], [128], [256], [512]])
    aspect_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    conv_depth: int = 1
    fg_iou_thresh: float = 0.7
    bg_iou_thresh: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    pre_nms_topk_train: int = 2000
    pre_nms_topk_test: int = 1000
    post_nms_topk_train: int = 2000
    post_nms_topk_test: int = 1000
    nms_thresh: float = 0.7
    min_box_size: float = 1e-3
    score_thresh: float = 0.0
    smooth_l1_beta: float = 1.0 / 9


@dataclass
class RoIConfig:
    in_features: list[str] = field(default_factory=lambda: ["s4", "s8", "s16", "s32"])
    pooler: str = "roi_align"  # "roi_align" | "roi_pool" | "spp"
    spp_levels: list[int] = field(default_factory=lambda: [4, 2, 1])  # pooler "spp": pyramid grid sizes
    pooler_resolution: int = 7
    sampling_ratio: int = 2
    head_fc_dims: list[int] = field(default_factory=lambda: [1024, 1024])
    head_conv_dims: list[int] = field(default_factory=list)  # optional 3x3 convs before the fcs
    fg_iou_thresh: float = 0.5
    bg_iou_thresh: float = 0.5
    # proposals with best IoU below this are ignored, not background (Fast R-CNN: 0.1, background in [0.1, 0.5))
    bg_iou_low: float = 0.0
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    bbox_reg_weights: list[float] = field(default_factory=lambda: [10.0, 10.0, 5.0, 5.0])
    smooth_l1_beta: float = 1.0
    add_gt_as_proposals: bool = True
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_image: int = 100


@dataclass
class ProposalsConfig:
    """Where two-stage / region models get proposals: the RPN, or precomputed (see detseg.data.proposals)."""
    source: str = "rpn"  # "rpn" | "selective_search" | "file"
    mode: str = "fast"  # selective search preset: "fast" | "quality"
    max_proposals: int = 2000  # per image, in OpenCV's order
    min_size: float = 4.0  # pixels of the original image; smaller boxes are dropped
    max_side: int | None = None  # downscale the image to this long side before selective search (boxes scaled back)
    file: str | None = None  # source "file": JSON {image_id: [[x1, y1, x2, y2], ...]} in original pixels
    cache_dir: str | None = None  # None: <train.output_dir>/proposals
    workers: int = 2  # processes building the selective search cache
    max_test: int | None = None  # keep only the first N proposals per image at inference (None: all)


@dataclass
class RCNNConfig:
    """R-CNN's region warping (arch "rcnn"); the classifier and sampling come from model.roi."""
    warp_size: int = 227  # each region is warped to warp_size x warp_size pixels
    context_padding: int = 16  # pixels of image context around the box, in the warped region
    chunk_size: int = 128  # regions per backbone pass


@dataclass
class ModelConfig:
    arch: str = "faster_rcnn"
    num_classes: int | None = None  # None: the training set's category count
    class_names: list[str] | None = None  # None: the training set's names (stored with the run)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi: RoIConfig = field(default_factory=RoIConfig)
    proposals: ProposalsConfig = field(default_factory=ProposalsConfig)
    rcnn: RCNNConfig = field(default_factory=RCNNConfig)
    pixel_mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])
    pixel_std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])
    size_divisibility: int = 32
    weights: str | None = None  # a detseg checkpoint to start the whole model from


@dataclass
class SplitConfig:
    ann_file: str = ""  # COCO: instances json
    img_dir: str = ""  # COCO: image folder
    root: str = ""  # VOC: folder holding JPEGImages/, Annotations/, ImageSets/
    split: str = ""  # VOC: ImageSets/Main/<split>.txt


@dataclass
class DataConfig:
    format: str = "coco"  # "coco" | "voc"
    train: SplitConfig = field(default_factory=SplitConfig)
    val: SplitConfig = field(default_factory=SplitConfig)
    classes: list[str] | None = None  # VOC: class names; None discovers them from the xml files
    category_ids: list[int] | None = None  # COCO: the label space (label i <-> id); None: the file's ids
    min_size_train: list[int] = field(default_factory=lambda: [800])
    max_size_train: int = 1333
    min_size_test: int = 800
    max_size_test: int = 1333
    flip_prob: float = 0.5
    color_jitter: float = 0.0
    batch_size: int = 2  # images per step, over all processes
    num_workers: int = 2
    on_bad_sample: str = "error"  # "error" | "skip"


@dataclass
class SolverConfig:
    optimizer: str = "sgd"  # "sgd" | "adamw"
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    schedule: str = "step"  # "step" | "cosine"
    steps: list[int] = field(default_factory=list)  # iterations where lr is multiplied by gamma
    gamma: float = 0.1
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    min_lr_factor: float = 0.0  # cosine: final lr = lr * min_lr_factor
    clip_grad_norm: float | None = None


@dataclass
class TrainConfig:
    max_iters: int = 90000
    # If set, the run stops after this many minutes and the schedule is fitted to that budget.
    max_minutes: float | None = None
    eval_period: int = 0  # 0: evaluate only at the end
    checkpoint_period: int = 5000
    log_period: int = 20
    amp: bool = False  # mixed precision on CUDA
    # A non-finite loss or gradient norm: "error" stops the run (the last checkpoint stays the
    # last good one); "skip" drops that update, counts it and logs the count as skipped_steps.
    on_nonfinite: str = "error"  # "error" | "skip"
    seed: int = 42
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    find_unused_parameters: bool = False  # DDP: heads that skip parameters on some batches need it
    output_dir: str = "runs/default"


@dataclass
class TestConfig:
    score_thresh: float | None = None  # overrides model.roi.score_thresh at inference when set
    batch_size: int = 1


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
