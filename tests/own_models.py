"""A model of your own, as a user writes it, and a registry that forgets the models a test registers."""

import sys

import pytest

from cityagent.models import registry

NODE_MLP = '''
import torch
from torch import nn

from cityagent.models import register


@register("{name}", domain="traffic")
class NodeMLP(nn.Module):
    """An MLP over each node's input window (shared by all nodes)."""

    def __init__(self, input_len: int, in_features: int, horizon: int, hidden: int = 8):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(input_len * in_features, hidden), nn.ReLU(), nn.Linear(hidden, horizon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, n, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, n, t * f)  # [B, N, T*F]
        return self.mlp(x).transpose(1, 2)  # [B, H, N]
'''
"""Source of a module registering ``NodeMLP`` (an MLP over each node's input window) as ``{name}``."""


@pytest.fixture
def own_registry(monkeypatch):
    """The registry, sys.path and the modules as they were, after the test registered models of its own."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("own_models_"):
            del sys.modules[name]
