"""A trained model as one file: registry name, builder params, weights, scalers and task metadata.

Training writes it (as the MLflow artifact ``bundle/model.pt``); export rebuilds the real-unit ``ScaledModel``
from it without needing the hub.
"""

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cityagent.errors import CityAgentError
from cityagent.models.registry import build_model
from cityagent.models.scaled import ScaledModel

BUNDLE_FILE = "model.pt"


def _to_saveable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(v))
    if isinstance(v, tuple):
        return list(v)
    return v


def _from_saved(v: Any) -> Any:
    return v.numpy() if isinstance(v, torch.Tensor) else v


@dataclass
class ModelBundle:
    """Everything needed to rebuild a trained model in real units.

    Args:
        model_name: registry name (``tgcn``).
        build_params: keyword arguments of ``build_model`` (arrays such as the adjacency included).
        state_dict: weights of the ``ScaledModel`` (net + scaling buffers).
        x_scaler, y_scaler: ``Scaler.to_dict()`` of the input features and the target.
        meta: task facts for serving: task, domain, dataset, protocol, nodes, step, input_len, horizon,
            input_offsets, target_offsets, feature_names, units, quantiles, eval_mask, run_id.
    """

    model_name: str
    build_params: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    x_scaler: dict[str, Any]
    y_scaler: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def build(self) -> ScaledModel:
        """The trained real-unit model, in eval mode (torch models only)."""
        if self.meta.get("estimator"):
            raise CityAgentError(
                f"{self.model_name} is a scikit-learn model: load {self.meta['estimator']} beside this bundle with "
                "cityagent.training.classical.ClassicalPredictor.load instead"
            )
        net = build_model(self.model_name, **self.build_params)
        model = ScaledModel(
            net, self.x_scaler["scale"], self.x_scaler["offset"], self.y_scaler["scale"][0], self.y_scaler["offset"][0]
        )
        if "margin" in self.state_dict:  # a conformally calibrated quantile model
            model.set_margin(np.zeros(tuple(self.state_dict["margin"].shape), dtype=np.float32))
        model.load_state_dict(self.state_dict)
        return model.eval()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": 1,
            "model_name": self.model_name,
            "build_params": {k: _to_saveable(v) for k, v in self.build_params.items()},
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "x_scaler": self.x_scaler,
            "y_scaler": self.y_scaler,
            "meta": self.meta,
        }
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ModelBundle":
        """Read a bundle; a missing or corrupt file is a clear error."""
        path = Path(path)
        if not path.is_file():
            raise CityAgentError(f"model bundle {path} does not exist; was the run trained to the end?")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            return cls(
                model_name=payload["model_name"],
                build_params={k: _from_saved(v) for k, v in payload["build_params"].items()},
                state_dict=payload["state_dict"],
                x_scaler=payload["x_scaler"],
                y_scaler=payload["y_scaler"],
                meta=payload["meta"],
            )
        except (RuntimeError, KeyError, EOFError, ValueError, TypeError, OSError, pickle.UnpicklingError) as e:
            raise CityAgentError(f"model bundle {path} is corrupt or from another version ({e}); retrain") from e
