"""The threaded CPU RoIAlign / RoIPool and the multi-level pooler equal torchvision's ops (forward and gradients)."""
import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align, roi_pool

from detseg.models.roi import threaded_roi_ops as tra
from detseg.models.roi.roi_align_levels import _channel_slices, roi_align_levels
from detseg.models.roi.poolers import RoIAlignPooler, RoIPoolPooler, SPPPooler


def random_rois(num: int, num_images: int, size: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=g) * size * 0.7
    wh = torch.rand(num, 2, generator=g) * size * 0.5 + 2
    index = torch.randint(0, num_images, (num, 1), generator=g).float()
    return torch.cat([index, xy, xy + wh], 1)


@pytest.mark.parametrize("op, ours, ref", [
    ("roi_align", lambda f, r: roi_align_levels([f], r, None, [0.25], 7, 2), lambda f, r: roi_align(f, r, 7, 0.25, 2)),
    ("roi_pool", lambda f, r: tra.threaded_roi_pool(f, r, 7, 0.25), lambda f, r: roi_pool(f, r, 7, 0.25)),
])
def test_forward_is_bit_identical_and_gradient_matches(two_threads, op, ours, ref):
    feats = torch.randn(2, 32, 20, 24, requires_grad=True)
    rois = random_rois(300, 2, 80)
    assert tra._num_chunks(feats, rois) == 2 and len(_channel_slices(32, 300)) == 2  # the threaded paths
    ours_out, ref_out = ours(feats, rois), ref(feats, rois)
    assert torch.equal(ours_out, ref_out)
    weights = torch.randn_like(ref_out)
    (grad_ours,) = torch.autograd.grad((ours_out * weights).sum(), feats)
    (grad_ref,) = torch.autograd.grad((ref_out * weights).sum(), feats)
    torch.testing.assert_close(grad_ours, grad_ref, atol=1e-5, rtol=1e-5)
    assert grad_ref.abs().sum() > 0


@pytest.mark.parametrize("num_rois", [300, 10], ids=["threaded", "one_chunk"])
@pytest.mark.parametrize("op, ours, ref", [
    ("roi_align", lambda f, r: roi_align_levels([f], r, None, [0.25], 7, 2), lambda f, r: roi_align(f, r, 7, 0.25, 2)),
    ("roi_pool", lambda f, r: tra.threaded_roi_pool(f, r, 7, 0.25), lambda f, r: roi_pool(f, r, 7, 0.25)),
])
def test_bf16_maps_of_a_cpu_autocast_pool_in_float32_and_come_back_in_bf16(two_threads, op, ours, ref, num_rois):
    """torchvision has no CPU autocast for roi_pool (it raised on bf16 maps with float32 boxes): both ops
    pool the float32 map, so boxes keep float32 coordinates, and return the map's dtype."""
    feats = torch.randn(2, 32, 20, 24, requires_grad=True)
    rois = random_rois(num_rois, 2, 80)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = feats.to(torch.bfloat16)
        out = ours(half, rois)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref(half.detach().float(), rois).to(torch.bfloat16), atol=0, rtol=0)
    (grad,) = torch.autograd.grad(out.float().sum(), feats)
    assert grad.dtype == torch.float32 and grad.abs().sum() > 0


def test_few_rois_or_one_thread_use_torchvision_directly(two_threads):
    feats = torch.randn(1, 4, 10, 10)
    assert tra._num_chunks(feats, random_rois(10, 1, 40)) == 1
    assert _channel_slices(64, 10) == [slice(0, 64)]
    assert _channel_slices(33, 500) == [slice(0, 16), slice(16, 33)]
    assert _channel_slices(31, 500) == [slice(0, 31)]  # fewer than 16 channels a thread: one
    torch.set_num_threads(8)
    assert len(_channel_slices(256, 500)) == 8 and len(_channel_slices(64, 500)) == 4
    torch.set_num_threads(1)
    assert tra._num_chunks(feats, random_rois(500, 1, 40)) == 1
    assert _channel_slices(256, 500) == [slice(0, 256)]


@pytest.mark.parametrize("dtype, layout", [(torch.float32, torch.contiguous_format),
                                           (torch.float32, torch.channels_last), (torch.bfloat16, torch.channels_last)],
                         ids=["fp32", "fp32_channels_last", "bf16_channels_last"])
def test_multilevel_pooler_and_its_gradients_equal_multiscale_roialign_bit_for_bit(two_threads, dtype, layout):
    """Each thread runs torchvision's kernels on a slice of the channels: every element and every map's
    gradient is computed as by MultiScaleRoIAlign, so they are equal, in the maps' dtype and layout."""
    names, strides = ["p2", "p3", "p4", "p5"], [4, 8, 16, 32]
    size = 512
    g = torch.Generator().manual_seed(1)
    base = {n: torch.randn(2, 32, size // s, size // s, generator=g) for n, s in zip(names, strides)}
    boxes = []
    for _ in range(2):  # small to large boxes so every level gets RoIs (side >= 448 for p5)
        xy = torch.rand(200, 2, generator=g) * size * 0.1
        wh = torch.rand(200, 2, generator=g) ** 2 * size * 0.9 + 4
        wh[:10] = torch.rand(10, 2, generator=g) * 8 + 450
        boxes.append(torch.cat([xy, xy + wh], 1))
    pooler = RoIAlignPooler(names, strides, 7, 2)
    assert set(pooler.mapper(boxes).tolist()) == {0, 1, 2, 3}
    maps = {n: b.to(dtype, memory_format=layout).requires_grad_() for n, b in base.items()}
    ref_maps = {n: b.to(dtype, memory_format=layout).requires_grad_() for n, b in base.items()}
    ours = pooler(maps, boxes, [(size, size)] * 2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        ref = MultiScaleRoIAlign(names, 7, 2)(ref_maps, boxes, [(size, size)] * 2)
    assert ours.dtype == ref.dtype == dtype and torch.equal(ours, ref)
    weights = torch.randn(ref.shape, generator=g).to(dtype)
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    for name in names:
        grad, ref_grad = maps[name].grad, ref_maps[name].grad
        assert grad.dtype == dtype and grad.is_contiguous(memory_format=layout)
        assert torch.equal(grad, ref_grad) and grad.abs().sum() > 0


def test_a_level_without_rois_gets_no_gradient_and_zero_rois_give_an_empty_result(two_threads):
    maps = [torch.randn(1, 32, 32, 32, requires_grad=True), torch.randn(1, 32, 16, 16, requires_grad=True)]
    rois = random_rois(64, 1, 100)
    out = roi_align_levels(maps, rois, torch.zeros(64, dtype=torch.long), [0.25, 0.125], 7, 2)
    out.sum().backward()
    assert maps[0].grad.abs().sum() > 0 and maps[1].grad is None  # None: autograd's zero
    empty = roi_align_levels(maps, rois[:0], torch.zeros(0, dtype=torch.long), [0.25, 0.125], 7, 2)
    assert empty.shape == (0, 32, 7, 7)


def test_roi_pool_and_spp_poolers_equal_torchvision_on_per_image_boxes(two_threads):
    feats = torch.randn(2, 8, 32, 32)
    rois = random_rois(400, 2, 128, seed=4)
    boxes = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    ordered = torch.cat([rois[rois[:, 0] == i] for i in range(2)])
    pooled = RoIPoolPooler("s4", 4, 7)({"s4": feats}, boxes, None)
    assert torch.equal(pooled, roi_pool(feats, ordered, 7, 0.25))
    spp = SPPPooler("s4", 4, [4, 2, 1], channels=8)({"s4": feats}, boxes, None)
    expected = torch.cat([roi_pool(feats, ordered, l, 0.25).flatten(1) for l in (4, 2, 1)], 1)
    assert torch.equal(spp, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inference_pooler_writes_every_level_into_one_output_bit_identically(two_threads, dtype):
    """Without gradients each level's chunks go straight into their rows (multilevel_roi_align): the same
    values as torchvision's MultiScaleRoIAlign on the float32 maps, in the maps' dtype, even with a level
    that gets no RoI and a map in channels-last order (the bf16 default)."""
    names, strides, size = ["p2", "p3", "p4", "p5"], [4, 8, 16, 32], 256
    g = torch.Generator().manual_seed(2)
    features = {n: torch.randn(2, 32, size // s, size // s, generator=g).to(dtype, memory_format=torch.channels_last)
                for n, s in zip(names, strides)}
    xy = torch.rand(300, 2, generator=g) * size * 0.6
    wh = torch.rand(300, 2, generator=g) * 60 + 4  # nothing large enough for p5
    boxes = [torch.cat([xy, xy + wh], 1)[:170], torch.cat([xy, xy + wh], 1)[170:]]
    pooler = RoIAlignPooler(names, strides, 7, 2)
    assert (pooler.mapper(boxes) == 3).sum() == 0 and (pooler.mapper(boxes) == 0).sum() >= 64
    with torch.no_grad():
        ours = pooler(features, boxes, [(size, size)] * 2)
        none = pooler(features, [torch.zeros(0, 4), torch.zeros(0, 4)], [(size, size)] * 2)
    floats = {n: f.float().contiguous() for n, f in features.items()}
    ref = MultiScaleRoIAlign(names, 7, 2)(floats, boxes, [(size, size)] * 2).to(dtype)
    assert ours.dtype == dtype and torch.equal(ours, ref)
    assert none.shape == (0, 32, 7, 7)
