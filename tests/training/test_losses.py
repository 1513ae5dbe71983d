"""Losses: masking, quantiles, the zero-heavy risk loss, and config errors."""

import pytest
import torch

from cityagent.errors import ConfigError
from cityagent.training.losses import MaskedHuber, MaskedMAE, MaskedMSE, Pinball, RiskLoss, make_loss


def test_masked_losses_ignore_missing_targets():
    pred = torch.tensor([[[1.0, 5.0]]])
    target = torch.tensor([[[0.0, 100.0]]])
    mask = torch.tensor([[[True, False]]])
    assert MaskedMAE()(pred, target, mask).item() == pytest.approx(1.0)
    assert MaskedMSE()(pred, target, mask).item() == pytest.approx(1.0)
    assert MaskedHuber(delta=1.0)(pred, target, mask).item() == pytest.approx(0.5)
    empty = MaskedMAE()(pred.requires_grad_(), target, torch.zeros_like(mask))
    assert empty.item() == 0.0
    empty.backward()  # still a graph, so a batch with no observed target does not crash training


def test_pinball_by_hand():
    loss = Pinball((0.1, 0.9))
    pred = torch.tensor([0.5, 2.0]).reshape(1, 1, 1, 2)
    target = torch.ones(1, 1, 1)
    assert loss(pred, target, torch.ones(1, 1, 1, dtype=torch.bool)).item() == pytest.approx((0.05 + 0.1) / 2)
    with pytest.raises(ConfigError, match="quantile loss needs"):
        loss(torch.zeros(1, 1, 1), target, torch.ones(1, 1, 1, dtype=torch.bool))


def test_risk_loss_weights_nonzero_cells_up():
    # scaled = real / 10; real risk 0 weighs 0.05, 1 weighs 0.2, 3 weighs 0.5
    loss = RiskLoss(y_scale=0.1, y_offset=0.0)
    mask = torch.ones(1, 1, 3, dtype=torch.bool)
    target = torch.tensor([0.0, 0.1, 0.3]).reshape(1, 1, 3)
    pred = target + 1.0
    assert loss(pred, target, mask).item() == pytest.approx((0.05 + 0.2 + 0.5) / 3)
    # predicting all-zero costs more on the one risky cell than missing every quiet cell by the same amount
    quiet_miss = loss(torch.full((1, 1, 3), 0.3), torch.tensor([0.0, 0.0, 0.3]).reshape(1, 1, 3), mask)
    risky_miss = loss(torch.zeros(1, 1, 3), torch.tensor([0.0, 0.0, 0.3]).reshape(1, 1, 3), mask)
    assert risky_miss > quiet_miss


def test_make_loss_checks_quantiles():
    assert isinstance(make_loss("quantile", (0.1, 0.5, 0.9)), Pinball)
    with pytest.raises(ConfigError, match=r"needs train\.quantiles"):
        make_loss("quantile")
    with pytest.raises(ConfigError, match="quantiles need"):
        make_loss("mae", (0.5,))
    with pytest.raises(ConfigError, match="unknown loss"):
        make_loss("hinge")
