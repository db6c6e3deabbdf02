"""float32 linear layers through oneDNN: the values and gradients of torch's linear, taken only where they
pay (float32 outside autocast, large products, CPUs where oneDNN is the faster, no graph captured)."""
import pytest
import torch
from torch import nn

from detseg.models.layers import cpu_linear
from detseg.models.layers.inference_weights import keep_inference_weights

pytestmark = pytest.mark.skipif(not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")),
                                reason="needs torch's oneDNN linear op")


@pytest.fixture
def onednn_calls(monkeypatch):
    """Counts the oneDNN products; oneDNN counts as the faster, as on this project's AMD EPYC."""
    calls = []
    real = cpu_linear._onednn
    monkeypatch.setattr(cpu_linear, "_onednn", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(cpu_linear, "onednn_matmul_is_faster", lambda: True)
    return calls


def _run(fn, x, weight, bias, grad_of=("x", "weight", "bias")):
    x, weight = x.clone().requires_grad_("x" in grad_of), weight.clone().requires_grad_("weight" in grad_of)
    bias = None if bias is None else bias.clone().requires_grad_("bias" in grad_of)
    out = fn(x, weight, bias)
    inputs = [t for t in (x, weight, bias) if t is not None and t.requires_grad]
    grads = torch.autograd.grad(out, inputs, torch.linspace(-1, 1, out.numel()).view_as(out))
    return out.detach(), grads


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("grad_of", [("x", "weight", "bias"), ("x",), ("weight", "bias")])
def test_values_and_gradients_are_torchs(onednn_calls, with_bias, grad_of):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(96, 640), torch.randn(160, 640) / 25, torch.randn(160)
    got, got_grads = _run(cpu_linear.linear, x, weight, bias if with_bias else None, grad_of)
    calls = len(onednn_calls)
    want, want_grads = _run(torch.nn.functional.linear, x, weight, bias if with_bias else None, grad_of)
    # the forward, and one product for each of x's and the weight's gradients
    assert calls == 1 + ("x" in grad_of) + ("weight" in grad_of)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert len(got_grads) == len(want_grads)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", ["small product", "bf16 autocast", "float64", "batched 3-d input",
                                  "oneDNN not faster", "traced"])
def test_torchs_linear_where_onednn_would_not_pay_or_not_apply(onednn_calls, monkeypatch, case):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(96, 640), torch.randn(160, 640), torch.randn(160)
    if case == "small product":
        x = x[:8]
    if case == "float64":
        x, weight, bias = x.double(), weight.double(), bias.double()
    if case == "batched 3-d input":
        x = x.view(4, 24, 640)
    if case == "oneDNN not faster":
        monkeypatch.setattr(cpu_linear, "onednn_matmul_is_faster", lambda: False)
    if case == "bf16 autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, want = cpu_linear.linear(x, weight, bias), torch.nn.functional.linear(x, weight, bias)
    elif case == "traced":
        layer = keep_inference_weights(nn.Sequential(nn.Linear(640, 160)))
        got = torch.jit.trace(layer, (x,), check_trace=False)(x)  # the check would rerun it untraced
        want = torch.nn.functional.linear(x, layer[0].weight, layer[0].bias)
    else:
        got, want = cpu_linear.linear(x, weight, bias), torch.nn.functional.linear(x, weight, bias)
    assert onednn_calls == []
    assert torch.equal(got, want)


def test_models_linear_layers_take_it_in_training_and_inference(onednn_calls):
    torch.manual_seed(0)
    layer = keep_inference_weights(nn.Sequential(nn.Linear(640, 160)))
    x = torch.randn(96, 640)
    layer(x).sum().backward()
    # the forward and the weight's gradient (x needs none)
    assert len(onednn_calls) == 2 and layer[0].weight.grad.shape == (160, 640)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer[0].weight, layer[0].bias))
    assert len(onednn_calls) == 3


def test_flop_counter_counts_it_as_torchs_linear(onednn_calls):
    """Model summaries and the overhead benchmark count FLOPs with FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(fn) -> int:
        x = torch.randn(96, 640, requires_grad=True)
        weight = torch.randn(160, 640, requires_grad=True)
        with FlopCounterMode(display=False) as counter:
            fn(x, weight, None).sum().backward()
        return counter.get_total_flops()

    assert flops(cpu_linear.linear) == flops(torch.nn.functional.linear) == 3 * 2 * 96 * 640 * 160
    assert len(onednn_calls) == 3
