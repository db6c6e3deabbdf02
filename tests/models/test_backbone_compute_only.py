"""A model that reads only shallow maps does not run the deeper backbone stages, and gets the same maps."""
import torch

from detseg.config import load_config
from detseg.models.build import build_backbone
from detseg.models.build import build_model

TINY = ["model.backbone.weights=null", "model.backbone.width=0.25"]


def _stages_run(backbone, images) -> list[str]:
    ran = []
    hooks = [getattr(backbone, name).register_forward_hook(lambda *_, name=name: ran.append(name))
             for name in ("layer1", "layer2", "layer3", "layer4")]
    backbone(images)
    for hook in hooks:
        hook.remove()
    return ran


def test_yolo_on_s16_skips_layer4_and_keeps_the_s16_map():
    cfg = load_config("configs/yolo/shapes.yaml", TINY)
    assert cfg.model.yolo.in_feature == "s16"
    torch.manual_seed(0)
    model = build_model(cfg.model, 6).eval()
    images = torch.randn(1, 3, 64, 64)
    assert _stages_run(model.backbone, images) == ["layer1", "layer2", "layer3"]
    assert not any(p.requires_grad for p in model.backbone.layer4.parameters())  # DDP waits for no gradient
    assert all(p.requires_grad for p in model.backbone.layer3.parameters())
    full = build_backbone(cfg.model.backbone).eval()
    full.load_state_dict(model.backbone.state_dict())
    assert _stages_run(full, images) == ["layer1", "layer2", "layer3", "layer4"]
    with torch.no_grad():
        assert set(model.backbone(images)) == {"s4", "s8", "s16"}
        torch.testing.assert_close(model.backbone(images)["s16"], full(images)["s16"], rtol=0, atol=0)


def test_fcn_and_fpn_models_still_run_every_stage_they_read():
    fcn = build_model(load_config("configs/fcn/shapes_8s.yaml", TINY).model, 6).eval()
    assert _stages_run(fcn.backbone, torch.randn(1, 3, 64, 64))[-1] == "layer4"  # FCN-8s scores s32
    fcn16 = build_model(load_config("configs/fcn/shapes_8s.yaml", [*TINY, "model.fcn.in_features=[s16, s8]",
                                                                   "model.fcn.variant=16s"]).model, 6).eval()
    assert _stages_run(fcn16.backbone, torch.randn(1, 3, 64, 64)) == ["layer1", "layer2", "layer3"]
    faster = build_model(load_config("configs/faster_rcnn/shapes.yaml", TINY).model, 6).eval()
    assert _stages_run(faster.backbone, torch.randn(1, 3, 64, 64))[-1] == "layer4"  # FPN reads s32
