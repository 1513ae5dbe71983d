"""The trainable traffic models can fit a fixed batch: a cheap check that learning signal flows end to end."""

import pytest
import torch

from cityagent.models import build_model
from tests.models.inputs import H, N, common_params, make_x

SMALL = {
    "gru": dict(hidden_size=16),
    "tgcn": dict(hidden_size=16),
    "stid": dict(embed_dim=8, node_dim=8, tod_dim=8, dow_dim=8, dropout=0.0),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_loss_drops_on_a_fixed_batch(name):
    torch.manual_seed(0)
    model = build_model(name, **common_params(), **SMALL[name])
    x = make_x(8, seed=3)
    y = x[:, -1:, :, 0].repeat(1, H, 1) * torch.linspace(0.5, 1.5, N) + 0.3  # depends on input and node
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], f"{name}: {losses[0]:.3f} -> {losses[-1]:.3f}"
