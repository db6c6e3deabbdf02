"""The config schema: every key a YAML file may set, with its default.

Dataclasses rather than a free dict so a typo is caught at load time with a
suggestion, and so readers see the whole surface in one file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# The closed choices. The loader refuses any other value with one line naming the key and these options,
# so each list must match the code that consumes it (tests/config/test_config_choices.py compares them
# with the registries). model.backbone.name stays a str: its registry (detseg.models.backbones.BACKBONES)
# is the place to add a backbone, and config, the floor layer, may not import models to read it.
Arch = Literal["faster_rcnn", "mask_rcnn", "fast_rcnn", "sppnet", "rcnn", "fcn", "unet", "yolo", "ssd", "classifier"]
Norm = Literal["bn", "frozen_bn", "gn"]
NeckName = Literal["none", "fpn", "ssd"]
ExtraStyle = Literal["vgg", "lite"]
Pooler = Literal["roi_align", "roi_pool", "spp"]
ProposalSource = Literal["rpn", "selective_search", "file"]
SearchMode = Literal["fast", "quality"]
FCNVariant = Literal["32s", "16s", "8s", "torchvision"]
SSDPredictor = Literal["conv", "lite"]
DataFormat = Literal["coco", "voc", "imagefolder", "auto"]
Task = Literal["detection", "semantic", "classification"]
Augment = Literal["default", "ssd", "ssdlite", "yolo"]
BadSamplePolicy = Literal["error", "skip"]
Optimizer = Literal["sgd", "adamw"]
Schedule = Literal["step", "cosine"]
ClassWeighting = Literal["none", "auto"]
NonFinitePolicy = Literal["error", "skip"]
Logger = Literal["tensorboard", "mlflow"]
Device = Literal["auto", "cpu", "cuda"]


@dataclass
class BackboneConfig:
    name: str = "resnet50"
    # None: random init; "DEFAULT"/"IMAGENET1K_V1"...: torchvision weight enum; a path: local state dict,
    # or a detseg checkpoint (e.g. runs/<classifier>/last.pt) whose backbone.* tensors must all fit.
    weights: str | None = None
    # Stages before this index are frozen (0: nothing, 1: stem, 2: stem+res2, ...), as detectron2.
    freeze_at: int = 0
    # "bn": trainable BatchNorm, "frozen_bn": torchvision FrozenBatchNorm2d, "gn": GroupNorm(32).
    norm: Norm = "bn"
    width: float = 1.0  # channel multiplier for the small CPU backbones
    # ResNet only, torchvision's replace_stride_with_dilation for layer2..layer4: a dilated stage keeps
    # its key (s16, s32) while output_spec() reports its real stride (8 for FCN-ResNet50's [F, T, T]).
    dilation: list[bool] = field(default_factory=lambda: [False, False, False])
    out_features: list[str] = field(default_factory=lambda: ["s4", "s8", "s16", "s32"])


@dataclass
class NeckConfig:
    name: NeckName = "none"
    out_channels: int = 256
    extra_pool: bool = True  # FPN's LastLevelMaxPool (adds s64 for the RPN)
    # name "ssd": SSD's extra layers, each a 1x1 reduction then a 3x3 conv, appended after the coarsest input.
    extra_channels: list[int] = field(default_factory=lambda: [512, 256, 256, 256])
    # per extra layer: 2 halves the map (padded conv), 1 is an unpadded 3x3 conv (SSD300's 5 -> 3 -> 1)
    extra_strides: list[int] = field(default_factory=lambda: [2, 2, 1, 1])
    extra_style: ExtraStyle = "vgg"  # "vgg": plain convs + ReLU | "lite": depthwise-separable, BN + ReLU6 (SSDlite)
    # L2-normalise the finest input map with a learned per-channel scale starting here (SSD's conv4_3); null: off
    l2norm_scale: float | None = 20.0


@dataclass
class RPNConfig:
    in_features: list[str] = field(default_factory=lambda: ["s4", "s8", "s16", "s32", "s64"])
    # One list of sizes per feature map: [[32], [64], ...] with FPN, [[128, 256, 512]] on one map;
    # "auto": one size per map fitted to the training set's objects (detseg/data/autosize.py)
    anchor_sizes: list[list[float]] | Literal["auto"] = field(default_factory=lambda: [[32], [64], [128], [256], [512]])
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
    pooler: Pooler = "roi_align"
    spp_levels: list[int] = field(default_factory=lambda: [4, 2, 1])  # pooler "spp": pyramid grid sizes
    # SPPnet's multi-scale test: the image is also run at these factors of its test size, and each RoI
    # is pooled at the scale where its side is closest to spp_canonical_size px (He et al.: 224)
    spp_test_scales: list[float] = field(default_factory=list)  # empty: single scale
    spp_canonical_size: float = 224.0
    pooler_resolution: int = 7
    # pooler "roi_pool": resize the map bilinearly by this factor before pooling, so RoIPool's rounding of
    # each box edge to the grid is that much finer (more memory and time; see RoIPoolPooler)
    pool_upsample: int = 1
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
class MaskConfig:
    """Mask R-CNN's mask branch (arch "mask_rcnn")."""
    in_features: list[str] | None = None  # None: model.roi.in_features
    pooler_resolution: int = 14  # RoIAlign output; masks are predicted at twice this (28 x 28)
    sampling_ratio: int = 2
    conv_dims: list[int] = field(default_factory=lambda: [256, 256, 256, 256])
    threshold: float = 0.5  # pasted mask probabilities at or above it are foreground


@dataclass
class ProposalsConfig:
    """Where two-stage / region models get proposals: the RPN, or precomputed (see detseg.data.proposals)."""
    source: ProposalSource = "rpn"
    mode: SearchMode = "fast"  # selective search preset (OpenCV's two)
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
class UNetConfig:
    """U-Net's decoder on the backbone (arch "unet"): maps read deepest first, one width per decoder step."""
    in_features: list[str] = field(default_factory=lambda: ["s32", "s16", "s8", "s4"])
    channels: list[int] = field(default_factory=lambda: [128, 64, 32])


@dataclass
class FCNConfig:
    """Semantic segmentation heads (arch "fcn"); they predict num_classes + 1 maps (0 = background)."""
    # "32s" | "16s" | "8s": Long et al., 1x1 score layers and learned bilinear-initialised transposed convs;
    # "torchvision": torchvision's FCNHead (3x3 conv to in/4 channels, BN, ReLU, dropout, 1x1) + interpolation.
    variant: FCNVariant = "8s"
    # deepest first; 32s scores the first, 16s adds a skip from the second, 8s from the third
    in_features: list[str] = field(default_factory=lambda: ["s32", "s16", "s8"])
    fc_dims: list[int] = field(default_factory=list)  # convs before scoring (the paper's fc6/fc7: [4096, 4096])
    fc_kernel: int = 7  # kernel of the first fc conv (fc6 is 7x7 in VGG-16), the others are 1x1
    dropout: float = 0.5  # after each fc conv (paper 0.5); the "torchvision" head uses 0.1
    # the paper learns the x2 upsamplings but keeps the final one (x8/x16/x32) fixed to bilinear
    learn_final_upsampling: bool = False
    # train on the hardest fraction of labelled pixels per batch (bootstrapped cross-entropy); null: all
    # pixels, as the paper. For data where a plain background covers most pixels (shapes: ~90%)
    hard_pixel_fraction: float | None = None
    aux_loss: bool = False  # a torchvision FCNHead on aux_in_feature, trained with weight aux_weight
    aux_in_feature: str = "s16"
    aux_weight: float = 0.5


@dataclass
class YOLOConfig:
    """YOLO v1 (Redmon et al. 2016): an S x S grid, B boxes per cell, one class distribution per cell."""
    in_feature: str = "s32"  # the one feature map the head reads; pooled to grid_size x grid_size if larger
    grid_size: int = 7  # S
    boxes_per_cell: int = 2  # B
    conv_dims: list[int] = field(default_factory=list)  # 3x3 conv + BN + LeakyReLU(0.1) layers before the predictor
    fc_dim: int | None = 4096  # the paper's fully connected layer (+ dropout); null: a 1x1 conv predictor per cell
    dropout: float = 0.5
    lambda_coord: float = 5.0
    lambda_noobj: float = 0.5
    score_thresh: float = 0.05  # on class-specific confidence Pr(class) x confidence
    nms_thresh: float = 0.5
    detections_per_image: int = 100


@dataclass
class SSDConfig:
    """SSD (Liu et al. 2016): default boxes on several maps, 3x3 predictors, hard negative mining."""
    in_features: list[str] = field(default_factory=lambda: ["s8", "s16", "s32", "s64", "s128", "s256"])
    # per map: each ratio r adds boxes of ratio r and 1/r to the two square ones (scale s_k and sqrt(s_k s_k+1))
    aspect_ratios: list[list[float]] = field(default_factory=lambda: [[2], [2, 3], [2, 3], [2, 3], [2], [2]])
    # s_min; scales spread linearly to s_max over the maps (the paper's rule); "auto": the 2nd and 98th
    # percentile of the training objects' sides relative to the image (detseg/data/autosize.py)
    min_scale: float | Literal["auto"] = 0.2
    max_scale: float | Literal["auto"] = 0.9
    scales: list[float] | None = None  # explicit: one per map plus one (torchvision's SSD300); overrides min/max
    steps: list[float] | None = None  # pixels between box centres per map; null: the input size / map size
    clip_default_boxes: bool = True  # clamp default box width and height to the image
    head: SSDPredictor = "conv"  # "conv": a 3x3 conv per map | "lite": depthwise 3x3 + BN + ReLU6, then 1x1 (SSDlite)
    iou_thresh: float = 0.5  # a default box is positive at IoU >= this (plus each box's best match)
    neg_pos_ratio: float = 3.0  # hard negative mining: negatives kept per positive
    bbox_reg_weights: list[float] = field(default_factory=lambda: [10.0, 10.0, 5.0, 5.0])
    score_thresh: float = 0.01
    nms_thresh: float = 0.45
    topk_candidates: int = 400  # per class and image, before NMS
    detections_per_image: int = 200


@dataclass
class ClassifierConfig:
    """Image classification (arch "classifier"): global average pool -> dropout -> linear."""
    in_feature: str | None = None  # the backbone map to pool; None: its deepest (largest stride)
    dropout: float = 0.0


@dataclass
class ModelConfig:
    arch: Arch = "faster_rcnn"
    num_classes: int | None = None  # None: the training set's category count
    class_names: list[str] | None = None  # None: the training set's names (stored with the run)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi: RoIConfig = field(default_factory=RoIConfig)
    proposals: ProposalsConfig = field(default_factory=ProposalsConfig)
    rcnn: RCNNConfig = field(default_factory=RCNNConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    yolo: YOLOConfig = field(default_factory=YOLOConfig)
    ssd: SSDConfig = field(default_factory=SSDConfig)
    fcn: FCNConfig = field(default_factory=FCNConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    pixel_mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])
    pixel_std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])
    size_divisibility: int = 32
    weights: str | None = None  # a detseg checkpoint to start the whole model from


@dataclass
class SplitConfig:
    ann_file: str = ""  # COCO: instances json
    img_dir: str = ""  # COCO: image folder
    root: str = ""  # VOC: folder holding JPEGImages/, Annotations/, ImageSets/; imagefolder: root/<class>/*.jpg
    split: str = ""  # VOC: ImageSets/Main/<split>.txt


@dataclass
class DataConfig:
    # "coco" | "voc" | "imagefolder" (task classification only) | "auto": coco when data.train.ann_file is
    # given, voc when data.train.root is (resolved when the config is loaded)
    format: DataFormat = "coco"
    # "semantic": samples carry sem_seg (0 = background, c + 1 = class c, 255 = ignore) for arch "fcn";
    # VOC reads SegmentationClass/*.png listed in ImageSets/Segmentation/<split>.txt (needs data.classes),
    # COCO renders the instance masks (crowd = ignore)
    # "classification": one label per image, format "imagefolder" (class = sub-folder name), arch "classifier";
    # images are cropped to data.fixed_size (random resized crop in training, centre crop in evaluation)
    task: Task = "detection"
    train: SplitConfig = field(default_factory=SplitConfig)
    val: SplitConfig = field(default_factory=SplitConfig)
    classes: list[str] | None = None  # VOC: class names; None discovers them from the xml files
    category_ids: list[int] | None = None  # COCO: the label space (label i <-> id); None: the file's ids
    # "auto" (each of the four): derived from the training set's image and object sizes at the start of
    # training and stored in the run's config.yaml (detseg/data/autosize.py)
    min_size_train: list[int] | Literal["auto"] = field(default_factory=lambda: [800])
    max_size_train: int | Literal["auto"] = 1333
    min_size_test: int | Literal["auto"] = 800
    max_size_test: int | Literal["auto"] = 1333
    flip_prob: float = 0.5
    color_jitter: float = 0.0
    # "default": shortest-edge resize, flip, colour jitter | "ssd": photometric distortion, zoom-out,
    # IoU-constrained crop, flip | "ssdlite": IoU crop and flip only | "yolo": scale/translate up to 20%, HSV
    augment: Augment = "default"
    # [h, w]: every image resized to exactly this (SSD, YOLO); replaces min/max. "auto": square, with the side
    # the shortest-edge rule of detseg/data/autosize.py gives the test short side
    fixed_size: list[int] | Literal["auto"] | None = None
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # classification: random crop area range
    batch_size: int = 2  # images per step, over all processes
    num_workers: int = 2
    on_bad_sample: BadSamplePolicy = "error"


@dataclass
class SolverConfig:
    optimizer: Optimizer = "sgd"
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    schedule: Schedule = "step"
    steps: list[int] = field(default_factory=list)  # iterations where lr is multiplied by gamma
    gamma: float = 0.1
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    min_lr_factor: float = 0.0  # cosine: final lr = lr * min_lr_factor
    clip_grad_norm: float | None = None
    # Class imbalance. "auto": each class's classification loss is weighted by the inverse of its box count in
    # the training set (images per class for "classifier" data), the weights normalised to mean 1 and then
    # clipped to [0.25, 4]; background weighs 1. Taken by the R-CNN family's box classifier, SSD's confidence
    # loss and YOLO's class term; semantic segmentation (fcn) and classifiers train unweighted. See
    # detseg/app/class_weights.py. "none": unweighted.
    class_weights: ClassWeighting = "none"
    # "auto": the weights derived at the start of training, one per class in model.class_names' order (stored
    # in the run's config.yaml so a resume and the run's evaluation use the same); computed again each start
    class_weights_values: list[float] | None = None


@dataclass
class TrainConfig:
    max_iters: int = 90000
    # If set, the run stops after this many minutes and the schedule is fitted to that budget.
    max_minutes: float | None = None
    eval_period: int = 0  # 0: evaluate only at the end
    checkpoint_period: int = 5000
    log_period: int = 20
    # Mixed precision and memory format, for training and for evaluating/inferring with this config:
    # "auto" = on for CUDA (bf16, or fp16 without bf16; channels_last) and for CPUs with bf16 in hardware
    # (bf16 + channels_last), fp32 elsewhere; true/false force them (amp true on the CPU is bf16).
    # See detseg/engine/precision.py.
    amp: bool | Literal["auto", "bf16", "fp16"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    # A non-finite loss or gradient norm: "error" stops the run (the last checkpoint stays the
    # last good one); "skip" drops that update, counts it and logs the count as skipped_steps.
    on_nonfinite: NonFinitePolicy = "error"
    seed: int = 42
    device: Device = "auto"
    find_unused_parameters: bool = False  # DDP: heads that skip parameters on some batches need it
    output_dir: str = "runs/default"
    # Where training numbers go besides metrics.jsonl: "tensorboard" (<run>/tb) and "mlflow" (pip install
    # detseg[mlflow]: params, metrics, then plots and checkpoints as artifacts; detseg/reports/mlflow_run.py)
    loggers: list[Logger] = field(default_factory=lambda: ["tensorboard"])
    # MLflow's tracking URI; None: $MLFLOW_TRACKING_URI if set, else the file store "mlruns" beside the run folder
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "detseg"


@dataclass
class TestConfig:
    score_thresh: float | None = None  # overrides the detection head's score_thresh at inference when set
    batch_size: int = 1
    # torch.compile the dense parts (backbone, neck, RPN/dense head convs, box/mask heads) for inference,
    # with inductor's weight freezing on the CPU: tools/infer.py, tools/eval.py and the benchmark. Each new
    # input shape compiles once (tens of seconds on a small CPU), so it pays for fixed-size inputs and
    # long runs; see detseg/engine/compile.py.
    compile: bool = False


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
