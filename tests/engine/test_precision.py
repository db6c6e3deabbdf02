"""train.amp / train.channels_last: resolution per device, and the bf16 and channels_last paths run on the CPU."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from detseg.config import ConfigError, load_config
from detseg.engine import precision
from detseg.engine.precision import cpu_has_native_bf16  # the real one: tests/conftest.py patches the module's
from tests.models.test_detector import CONFIG, _build, _train_batch

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def settings(amp="auto", channels_last="auto"):
    return SimpleNamespace(amp=amp, channels_last=channels_last)


@pytest.fixture(params=[False, True], ids=["cpu_without_bf16", "cpu_with_bf16"])
def native_bf16(request, monkeypatch):
    """Both kinds of CPU, whatever this machine is."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: request.param)
    return request.param


@pytest.mark.parametrize("setting, dtype", [(False, None), (True, torch.bfloat16),
                                            ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_explicit_amp_setting_on_cpu(setting, dtype, native_bf16):
    assert precision.amp_dtype(setting, CPU) == dtype


def test_auto_on_cpu_is_bf16_and_channels_last_only_with_bf16_in_hardware(native_bf16):
    assert precision.amp_dtype("auto", CPU) == (torch.bfloat16 if native_bf16 else None)
    assert precision.use_channels_last("auto", CPU, "auto") is native_bf16
    # forced fp32 keeps the default layout where the CPU has no AVX-512 (the suite pins that: conftest.py;
    # tests/utils/test_cpu.py covers the AVX-512 case)
    assert not precision.use_channels_last("auto", CPU, False)
    assert precision.use_channels_last("auto", CPU, "bf16")


def test_dtype_name_says_what_the_config_computes_in(native_bf16):
    assert precision.dtype_name(settings(), CPU) == ("bfloat16" if native_bf16 else "float32")
    assert precision.dtype_name(settings(amp="fp16"), CPU) == "float16"
    assert precision.dtype_name(settings(amp=False), CUDA) == "float32"


def test_cpu_bf16_detection_reads_the_cpu_flags():
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo (not Linux): detection returns False by design")
    flags = set(cpuinfo.read_text().split())
    expected = bool(flags & {"avx512_bf16", "amx_bf16"}) and torch.backends.mkldnn.is_available()
    assert cpu_has_native_bf16() is expected


def test_auto_is_on_for_cuda_and_channels_last_follows_the_device(native_bf16):
    assert precision.use_channels_last("auto", CUDA)
    assert precision.use_channels_last(True, CPU) and not precision.use_channels_last(False, CUDA)
    assert precision.amp_dtype(False, CUDA) is None
    assert precision.amp_dtype("fp16", CUDA) == torch.float16


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to ask for bf16 support")
def test_auto_amp_on_cuda_picks_a_half_type():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert precision.amp_dtype("auto", CUDA) == expected


def test_config_accepts_the_settings_and_names_the_key_of_a_bad_one():
    cfg = load_config(CONFIG, ["train.amp=bf16", "train.channels_last=true"])
    assert cfg.train.amp == "bf16" and cfg.train.channels_last is True
    assert load_config(CONFIG).train.amp == "auto"
    with pytest.raises(ConfigError, match="'train.amp'"):
        load_config(CONFIG, ["train.amp=fast"])


def test_bf16_autocast_trains_and_predicts_on_cpu():
    model = _build()
    dtypes = []
    model.backbone.register_forward_hook(lambda m, i, out: dtypes.append(next(iter(out.values())).dtype))
    with precision.autocast(settings(amp="bf16"), CPU):
        losses = model(_train_batch(), mode="loss")
    assert dtypes == [torch.bfloat16]  # the convolutions ran in bf16
    total = sum(losses.values())
    assert total.dtype == torch.float32 and torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    model.eval()
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad(), precision.autocast(settings(amp="bf16"), CPU):
        (out, _) = model(_train_batch(), mode="predict")
    assert len(out) > 0 and out.boxes.dtype == torch.float32 and torch.isfinite(out.boxes).all()


def test_channels_last_model_gives_the_same_detections():
    model = _build().eval()
    model.roi_heads.score_thresh = 0.0
    converted = precision.prepare_model(copy.deepcopy(model), settings(channels_last=True), CPU)
    conv = model.backbone.conv1 if hasattr(model.backbone, "conv1") else next(
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    converted_conv = dict(converted.named_modules())[next(n for n, m in model.named_modules() if m is conv)]
    assert converted_conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected, got = model(_train_batch(), mode="predict"), converted(_train_batch(), mode="predict")
    for exp, out in zip(expected, got):
        assert len(out) == len(exp) > 0
        torch.testing.assert_close(out.scores, exp.scores, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.boxes, exp.boxes, atol=1e-2, rtol=1e-4)


@pytest.mark.parametrize("config", ["faster_rcnn/shapes", "mask_rcnn/shapes", "ssd/shapes", "yolo/shapes",
                                    "fcn/shapes_8s"])
def test_every_family_keeps_full_precision_outputs_under_bf16(config):
    """Heads' raw outputs leave autocast as float32, so losses, decoding and scores keep their mantissa."""
    from detseg.benchmarks.throughput import synthetic_images, to_batch
    from detseg.models.build import build_model

    cfg = load_config(CONFIG.parents[1] / f"{config}.yaml", ["model.backbone.weights=null"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 5)  # synthetic_images draws labels 0..4
    images, targets = synthetic_images(2, 160, with_masks=cfg.model.arch == "mask_rcnn")
    batch = to_batch(images, targets)
    with precision.autocast(settings(amp="bf16"), CPU):
        losses = model(batch, mode="loss")
        model.eval()
        with torch.no_grad():
            out = model(batch, mode="predict")[0]
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    if isinstance(out, torch.Tensor):  # a semantic label map
        assert out.dtype == torch.int64 and out.shape == (160, 160)
    else:
        assert out.boxes.dtype == out.scores.dtype == torch.float32
