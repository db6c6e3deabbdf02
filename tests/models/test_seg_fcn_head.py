"""FCN heads and the segmentor: bilinear init, output geometry, skips, losses, predictions."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.models.seg.fcn import BilinearUpsample, LearnedUpsample, bilinear_kernel
from detseg.models.layers.postprocess import label_map_to_original
from detseg.models.seg.sem_seg import semantic_loss
from detseg.structures import Batch

CONFIG = "configs/fcn/shapes_8s.yaml"
TINY = ["model.backbone.width=0.25", "model.backbone.weights=null"]
NUM_CLASSES = 3


def _model(*overrides):
    torch.manual_seed(0)
    return build_model(load_config(CONFIG, [*TINY, *overrides]).model, NUM_CLASSES)


def _batch(sizes, orig_sizes=None, seed=0, with_targets=True):
    g = torch.Generator().manual_seed(seed)
    h, w = max(s[0] for s in sizes), max(s[1] for s in sizes)
    images = torch.zeros(len(sizes), 3, h, w, dtype=torch.uint8)
    sem_seg = torch.full((len(sizes), h, w), 255, dtype=torch.int64)
    for i, (ih, iw) in enumerate(sizes):
        images[i, :, :ih, :iw] = torch.randint(0, 256, (3, ih, iw), generator=g, dtype=torch.uint8)
        sem_seg[i, :ih, :iw] = torch.randint(0, NUM_CLASSES + 1, (ih, iw), generator=g)
    return Batch(images=images, image_sizes=list(sizes), orig_sizes=list(orig_sizes or sizes),
                 image_ids=list(range(len(sizes))), sem_seg=sem_seg if with_targets else None)


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_learned_upsample_starts_as_bilinear_interpolation(factor):
    x = torch.randn(1, 3, 5, 6)
    up = LearnedUpsample(3, factor)
    with torch.no_grad():
        out = up(x)
    assert out.shape == (1, 3, 5 * factor, 6 * factor)
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    # equal away from the border, where the transposed conv sees zeros instead of clamped pixels
    inner = (slice(None), slice(None), slice(factor, -factor), slice(factor, -factor))
    torch.testing.assert_close(out[inner], expected[inner], atol=1e-5, rtol=1e-5)
    assert up.weight.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(BilinearUpsample(3, factor)(x), out, atol=1e-6, rtol=1e-6)


def test_bilinear_kernel_is_per_channel():
    weight = bilinear_kernel(4, 2)
    assert weight.shape == (4, 4, 4, 4)
    off_diagonal = weight.clone()
    off_diagonal[range(4), range(4)] = 0
    assert off_diagonal.abs().sum() == 0
    assert torch.allclose(weight[0, 0].sum(), torch.tensor(4.0))  # factor**2: preserves the mean


@pytest.mark.parametrize("variant, ups", [("32s", 0), ("16s", 1), ("8s", 2)])
def test_variants_read_their_skips(variant, ups):
    model = _model(f"model.fcn.variant={variant}")
    assert len(model.head.scores) == ups + 1 and len(model.head.ups) == ups
    assert model.head.final_up.factor == 32 // 2**ups
    assert not list(model.head.final_up.parameters())  # fixed bilinear, as in the paper
    learned = _model(f"model.fcn.variant={variant}", "model.fcn.learn_final_upsampling=true").head.final_up
    assert isinstance(learned, LearnedUpsample) and learned.stride == (32 // 2**ups,) * 2
    for skip in model.head.scores[1:]:  # the paper starts skips at zero
        assert skip.weight.abs().sum() == 0 and skip.bias.abs().sum() == 0


def test_loss_and_gradients_reach_every_part():
    model = _model().train()
    losses = model(_batch([(64, 96), (50, 70)]), mode="loss")
    assert set(losses) == {"loss_fcn_ce"}
    value = losses["loss_fcn_ce"]
    assert value.dim() == 0 and torch.isfinite(value) and value > 0
    value.backward()
    for part in (model.backbone.conv1, model.head.scores[0], model.head.ups[0], model.head.ups[1]):
        assert part.weight.grad is not None and part.weight.grad.abs().sum() > 0
    # the zero-initialised skips still learn: their gradient is not zero
    assert model.head.scores[2].weight.grad.abs().sum() > 0


def test_loss_ignores_255_and_needs_targets():
    logits = torch.randn(1, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (1, 8, 8))
    batch = Batch(images=torch.zeros(1, 3, 8, 8, dtype=torch.uint8), image_sizes=[(8, 8)], orig_sizes=[(8, 8)],
                  image_ids=[0], sem_seg=target.clone())
    batch.sem_seg[:, :, 4:] = 255
    got = semantic_loss(logits, batch, "fcn")["loss_fcn_ce"]
    torch.testing.assert_close(got, F.cross_entropy(logits[..., :4], target[..., :4]))
    batch.sem_seg[:] = 255
    assert semantic_loss(logits, batch, "fcn")["loss_fcn_ce"].item() == 0.0
    batch.sem_seg = None
    with pytest.raises(ValueError, match="data.task=semantic"):
        semantic_loss(logits, batch, "fcn")


def test_hard_pixel_loss_averages_the_hardest_labelled_pixels():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 10, 10, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 10, 10), generator=g)
    target[0, :, 7:] = 255  # 30 ignored pixels: 170 labelled
    batch = Batch(images=torch.zeros(2, 3, 10, 10, dtype=torch.uint8), image_sizes=[(10, 10)] * 2,
                  orig_sizes=[(10, 10)] * 2, image_ids=[0, 1], sem_seg=target)
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")[target != 255]
    expected = per_pixel.sort(descending=True).values[:42].mean()  # round(0.25 * 170) = 42
    got = semantic_loss(logits, batch, "fcn", hard_fraction=0.25)["loss_fcn_ce"]
    torch.testing.assert_close(got, expected)
    everything = semantic_loss(logits, batch, "fcn", hard_fraction=1.0)["loss_fcn_ce"]
    torch.testing.assert_close(everything, semantic_loss(logits, batch, "fcn")["loss_fcn_ce"])
    (grad,) = torch.autograd.grad(got, logits)
    assert (grad.abs().sum(1) > 0).sum() == 42  # only the kept pixels are trained
    batch.sem_seg = torch.full_like(target, 255)
    assert semantic_loss(logits, batch, "fcn", hard_fraction=0.25)["loss_fcn_ce"].item() == 0.0
    with pytest.raises(ValueError, match="hard_pixel_fraction"):
        semantic_loss(logits, batch, "fcn", hard_fraction=1.5)


def test_fcn_head_reads_hard_pixel_fraction_from_the_config():
    hard, plain = _model("model.fcn.hard_pixel_fraction=0.25"), _model()
    assert hard.head.hard_fraction == 0.25 and plain.head.hard_fraction is None
    batch = _batch([(64, 64)])
    hard.eval(), plain.eval()  # same seed, same weights: only the loss's pixel selection differs
    with torch.no_grad():
        hard_loss = hard(batch, mode="loss")["loss_fcn_ce"]
        plain_loss = plain(batch, mode="loss")["loss_fcn_ce"]
    assert hard_loss > plain_loss  # the hardest quarter has a higher mean than all pixels


def test_predict_crops_padding_then_resizes_to_the_original_size():
    # class 1 on the left half of each image, class 2 on the right; junk (class 0) in the padding
    logits = torch.zeros(2, 3, 8, 12)
    logits[:, 0] = 5.0
    sizes = [(8, 8), (4, 12)]
    for i, (h, w) in enumerate(sizes):
        logits[i, :, :h, :w] = 0
        logits[i, 1, :h, : w // 2] = 5.0
        logits[i, 2, :h, w // 2 : w] = 5.0
    batch = Batch(images=torch.zeros(2, 3, 8, 12, dtype=torch.uint8), image_sizes=sizes,
                  orig_sizes=[(16, 16), (4, 12)], image_ids=[0, 1])
    maps = [label_map_to_original(l, hw, orig) for l, hw, orig in zip(logits, batch.image_sizes, batch.orig_sizes)]
    assert [m.shape for m in maps] == [(16, 16), (4, 12)] and maps[0].dtype == torch.int64
    assert (maps[0][:, :8] == 1).all() and (maps[0][:, 8:] == 2).all()
    assert (maps[1][:, :6] == 1).all() and (maps[1][:, 6:] == 2).all()


def test_both_mode_equals_loss_and_predict():
    model = _model().eval()
    batch = _batch([(64, 96), (50, 70)], orig_sizes=[(128, 192), (25, 35)])
    with torch.no_grad():
        losses, maps = model(batch, mode="both")
        assert torch.equal(losses["loss_fcn_ce"], model(batch, mode="loss")["loss_fcn_ce"])
        predicted = model(batch, mode="predict")
    assert [tuple(m.shape) for m in maps] == [(128, 192), (25, 35)]
    for a, b in zip(maps, predicted):
        assert torch.equal(a, b) and a.min() >= 0 and a.max() <= NUM_CLASSES


def test_aux_head_adds_a_weighted_loss():
    model = _model("model.fcn.aux_loss=true", "model.fcn.aux_weight=0.25").eval()
    batch = _batch([(64, 64)])
    with torch.no_grad():
        losses = model(batch, mode="loss")
        features = model.backbone(model.preprocess(batch))
        aux = model.aux_head(features, (64, 64))
    assert set(losses) == {"loss_fcn_ce", "loss_aux_ce"}
    torch.testing.assert_close(losses["loss_aux_ce"], 0.25 * F.cross_entropy(aux, batch.sem_seg, ignore_index=255))


@pytest.mark.parametrize("override, message", [
    ("model.fcn.variant=4s", "variant"),
    ("model.fcn.in_features=[s32,s16]", "reads 3 maps"),
    ("model.fcn.in_features=[s64,s16,s8]", "model.fcn.in_features"),
    ("model.fcn.in_features=[s8,s16,s32]", "deepest map to the shallowest"),
    ("model.backbone.dilation=[false,true,true]", "Bottleneck"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        _model(override)
