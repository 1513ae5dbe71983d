"""The promotion gate: margin on the primary metric, latency and size budgets, scored on the same window."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cityagent.errors import CityAgentError, ConfigError
from cityagent.training.gate import (
    Evaluation,
    GateConfig,
    check_comparable,
    evaluate_onnx,
    gate,
    gate_models,
    load_gate_config,
)
from cityagent.training.onnx_export import export_bundle
from tests.training.export_factories import H, N, real_windows, tiny_bundle

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "gate.yaml"
CFG = GateConfig(min_improvement=0.02, max_latency_ms=10.0, max_size_mb=1.0)


def ev(mae: float, latency_ms: float = 1.0, size_mb: float = 0.1) -> Evaluation:
    return Evaluation({"mae": mae, "rmse": mae * 1.2}, latency_ms, size_mb)


def test_the_shipped_config_loads_and_unknown_keys_fail(tmp_path):
    cfg = load_gate_config(CONFIG)
    assert cfg.primary_metric == "mae" and cfg.min_improvement == 0.02 and not cfg.greater_is_better
    assert load_gate_config() == cfg  # the default is configs/gate.yaml
    bad = tmp_path / "gate.yaml"
    bad.write_text("min_improvment: 0.05\n")
    with pytest.raises(ConfigError, match="min_improvment"):
        load_gate_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_gate_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "challenger, champion, promote",
    [
        (ev(2.0), None, True),  # no champion: budgets only
        (ev(2.0, latency_ms=11.0), None, False),  # over the latency budget
        (ev(2.0, size_mb=1.5), None, False),  # over the size budget
        (ev(2.0), ev(2.5), True),  # 20 % better
        (ev(2.0), ev(2.02), False),  # 1 % better: below the 2 % margin
        (ev(2.5), ev(2.0), False),  # worse
        (ev(1.0, latency_ms=20.0), ev(2.0), False),  # much better but too slow
        (Evaluation({"rmse": 1.0}, 1.0, 0.1), ev(2.0), False),  # primary metric missing
        (ev(float("nan")), ev(2.0), False),
    ],
)
def test_gate_decisions(challenger, champion, promote):
    verdict = gate(challenger, champion, CFG)
    assert verdict.promote is promote
    assert len(verdict.reasons) == 3 and all(isinstance(r, str) and r for r in verdict.reasons)


def test_greater_is_better_metrics():
    cfg = CFG.model_copy(update={"primary_metric": "acc", "greater_is_better": True})
    better, worse = Evaluation({"acc": 0.9}, 1.0, 0.1), Evaluation({"acc": 0.8}, 1.0, 0.1)
    assert gate(better, worse, cfg).promote and not gate(worse, better, cfg).promote


def test_evaluate_onnx_metrics_latency_and_size(tmp_path):
    bundle = tiny_bundle("gru")
    path = export_bundle(bundle, tmp_path / "m.onnx")
    x, y = real_windows(s=6)
    with torch.no_grad():
        pred = bundle.build()(torch.from_numpy(x)).numpy()
    result = evaluate_onnx(path, x, y, latency_runs=5)
    assert result.metrics["mae"] == pytest.approx(np.abs(pred - y).mean(), rel=1e-4)
    assert result.metrics["rmse"] == pytest.approx(np.sqrt(((pred - y) ** 2).mean()), rel=1e-4)
    assert 0 < result.latency_ms < 1000 and result.size_mb == pytest.approx(path.stat().st_size / 2**20)

    mask = np.array([True, False, True, False])  # evaluate nodes 0 and 2 only
    masked = evaluate_onnx(path, x, y, mask, latency_runs=1)
    assert masked.metrics["mae"] == pytest.approx(np.abs(pred - y)[..., mask].mean(), rel=1e-4)
    with pytest.raises(CityAgentError, match="targets"):
        evaluate_onnx(path, x, y[:, :, :2], latency_runs=1)
    with pytest.raises(CityAgentError, match="export"):
        evaluate_onnx(tmp_path / "nope.onnx", x, y)


def test_quantile_models_are_scored_on_the_median(tmp_path):
    bundle = tiny_bundle("stid", quantiles=(0.1, 0.5, 0.9))
    x, y = real_windows(s=4)
    path = export_bundle(bundle, tmp_path / "q.onnx", sample_x=x)
    with torch.no_grad():
        median = bundle.build()(torch.from_numpy(x)).numpy()[..., 1]
    assert evaluate_onnx(path, x, y, latency_runs=1).metrics["mae"] == pytest.approx(np.abs(median - y).mean(), 1e-4)


def test_gate_models_scores_both_on_the_same_window(tmp_path):
    good, bad = tiny_bundle("gru", seed=1), tiny_bundle("gru", seed=2)
    x, _ = real_windows(s=6)
    with torch.no_grad():
        y = good.build()(torch.from_numpy(x)).numpy()  # the window the good model predicts exactly
    assert y.shape == (6, H, N)
    good_path, bad_path = export_bundle(good, tmp_path / "good.onnx"), export_bundle(bad, tmp_path / "bad.onnx")
    cfg = GateConfig(max_latency_ms=1000.0, latency_runs=3)
    verdict, new, old = gate_models(good_path, bad_path, x, y, cfg=cfg)
    assert verdict.promote and new.metrics["mae"] < 1e-3 < old.metrics["mae"]
    assert not gate_models(bad_path, good_path, x, y, cfg=cfg)[0].promote
    assert gate_models(good_path, None, x, y, cfg=cfg)[0].promote


def test_gate_models_refuses_a_challenger_for_other_sensors(tmp_path):
    champion, other = tiny_bundle("gru", seed=1), tiny_bundle("gru", seed=2)
    other.meta["nodes"] = [f"r{i}" for i in range(len(other.meta["nodes"]))]  # same count, other roads
    x, y = real_windows(s=4)
    old, new = export_bundle(champion, tmp_path / "champion.onnx"), export_bundle(other, tmp_path / "other.onnx")
    with pytest.raises(CityAgentError, match=r"expects a different input than the champion .*nodes: .* added \(r0"):
        gate_models(new, old, x, y, cfg=GateConfig(max_latency_ms=1000.0, latency_runs=1))


def test_gate_models_refuses_a_challenger_answering_another_output(tmp_path):
    champion, quantile = tiny_bundle("stid", seed=1), tiny_bundle("stid", seed=2, quantiles=(0.1, 0.5, 0.9))
    x, y = real_windows(s=4)
    old = export_bundle(champion, tmp_path / "champion.onnx", sample_x=x)
    new = export_bundle(quantile, tmp_path / "quantile.onnx", sample_x=x)
    assert check_comparable(old, old) is None
    with pytest.raises(CityAgentError, match="answers a different output than the champion") as err:
        gate_models(new, old, x, y, cfg=GateConfig(max_latency_ms=1000.0, latency_runs=1))
    message = str(err.value)  # the differing keys are named; the input is the same, so it is not blamed
    assert (
        f"(quantiles [0.1, 0.5, 0.9] instead of None; output_shape [-1, {H}, {N}, 3] instead of [-1, {H}, {N}])"
        in message
    )
    assert "expects a different input" not in message and "models promote --force" in message
