"""Every registered torch model keeps the contract: shapes, finiteness, gradients, batch independence, ONNX."""

import io
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from cityagent.models import build_model, list_models, model_info
from tests.models.inputs import QUANTILES, H, N, common_params, make_x

TORCH_MODELS = [n for n in list_models() if model_info(n).kind != "classical"]
DEEP_MODELS = [n for n in TORCH_MODELS if model_info(n).kind == "deep"]
QS = [None, QUANTILES]


def build(name: str, quantiles=None) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, **common_params(quantiles=quantiles)).eval()


def test_every_domain_has_a_baseline_and_a_deep_model():
    for domain in ("traffic", "demand", "risk"):
        kinds = {model_info(n).kind for n in list_models(domain)}
        assert {"baseline", "deep", "classical"} <= kinds, domain


@pytest.mark.parametrize("quantiles", QS, ids=["point", "quantiles"])
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_output_shape_finite_and_sorted(name, quantiles):
    y = build(name, quantiles)(make_x(3))
    assert y.shape == ((3, H, N) if quantiles is None else (3, H, N, len(quantiles)))
    assert torch.isfinite(y).all()
    if quantiles is not None:
        assert (y.diff(dim=-1) >= 0).all(), "quantile outputs must be sorted"


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_samples_do_not_mix_across_the_batch(name):
    model, x = build(name), make_x(4, seed=1)
    torch.testing.assert_close(model(x)[1:2], model(x[1:2]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", DEEP_MODELS)
def test_gradients_reach_every_parameter(name):
    model = build(name, QUANTILES).train()
    model(make_x(3)).square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0


def export(model: torch.nn.Module, batch: int = 2) -> ort.InferenceSession:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (make_x(batch),),
            buf,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=17,
        )
    return ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("quantiles", QS, ids=["point", "quantiles"])
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_onnx_export_matches_torch_for_any_batch(name, quantiles):
    model = build(name, quantiles)
    session = export(model)
    for batch in (1, 5):
        x = make_x(batch, seed=batch)
        with torch.no_grad():
            want = model(x).numpy()
        got = session.run(None, {"x": x.numpy()})[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_dynamo_onnx_export_matches_torch(name, tmp_path):
    model = build(name, QUANTILES)
    program = torch.onnx.export(
        model,
        (make_x(2),),
        dynamo=True,
        input_names=["x"],
        output_names=["y"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        verbose=False,
    )
    program.save(tmp_path / "m.onnx")
    session = ort.InferenceSession(tmp_path / "m.onnx", providers=["CPUExecutionProvider"])
    x = make_x(5, seed=5)
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_runs_on_cuda_like_on_cpu(name, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare full fp32 with the CPU
    model, x = build(name, QUANTILES), make_x(4)
    with torch.no_grad():
        want = model(x)
        got = model.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)
    if list(model.parameters()):
        model.train()(x.cuda()).mean().backward()
        assert all(p.grad is not None and p.grad.is_cuda for p in model.parameters())
