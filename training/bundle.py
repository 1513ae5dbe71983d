"""A trained model as one file: registry name, builder params, weights, scalers and task metadata.

Training writes it (as the MLflow artifact ``bundle/model.pt``); export rebuilds the real-unit ``ScaledModel``
from it without needing the hub.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cityagent.errors import CityAgentError
from cityagent.models.registry import ModelInfo, build_model, model_info
from cityagent.models.scaled import ScaledModel
from cityagent.models.user_models import ensure_registered

BUNDLE_FILE = "model.pt"
PAYLOAD_KEYS = ("model_name", "build_params", "state_dict", "x_scaler", "y_scaler", "meta")


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
            input_offsets, target_offsets, feature_names, units, quantiles, eval_mask, run_id, model_module (the
            module that registered a model of the user's own, ``__main__`` for a notebook's; None for cityagent's).
    """

    model_name: str
    build_params: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    x_scaler: dict[str, Any]
    y_scaler: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def model_info(self) -> ModelInfo:
        """The registry entry of its model; a model of the user's own is registered first (in a new process)."""
        ensure_registered(self.model_name, self.meta.get("model_module"))
        return model_info(self.model_name)

    def build(self) -> ScaledModel:
        """The trained real-unit model, in eval mode (torch models only)."""
        if self.meta.get("estimator"):
            raise CityAgentError(
                f"{self.model_name} is a scikit-learn model: load {self.meta['estimator']} beside this bundle with "
                "cityagent.training.classical.ClassicalPredictor.load instead"
            )
        self.model_info()  # registers a model of the user's own first
        net = build_model(self.model_name, **self.build_params)
        model = ScaledModel(
            net, self.x_scaler["scale"], self.x_scaler["offset"], self.y_scaler["scale"][0], self.y_scaler["offset"][0]
        )
        if "margin" in self.state_dict:  # a conformally calibrated quantile model
            model.set_margin(np.zeros(tuple(self.state_dict["margin"].shape), dtype=np.float32))
        if "floor" in self.state_dict:  # outputs clipped at the target's floor (bundles before 2026-12-05: none)
            model.set_floor(0.0)
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
    def load(cls, path: str | Path, source: str | None = None) -> "ModelBundle":
        """Read a bundle; a missing, truncated or corrupt file, or unusable scalers, is a clear error.

        Args:
            path: the local file.
            source: how to name it in errors (e.g. ``runs:/<id>/bundle/model.pt``; default ``path``), since a
                downloaded copy lives in a temporary folder the user never sees.
        """
        path = Path(path)
        name = source or str(path)
        if not path.is_file():
            raise CityAgentError(f"model bundle {name} does not exist; was the run trained to the end?")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for damaged bytes; its advice (weights_only=False) is unsafe
            raise CityAgentError(
                f"model bundle {name} is not a readable cityagent bundle (truncated or corrupt: torch.load raised "
                f"{type(e).__name__}); retrain the run, or restore the file from a backup"
            ) from e
        missing = [k for k in PAYLOAD_KEYS if k not in payload] if isinstance(payload, dict) else list(PAYLOAD_KEYS)
        if missing:
            raise CityAgentError(
                f"model bundle {name} is not a cityagent bundle (no {', '.join(missing)}); retrain the run, or "
                "restore the file from a backup"
            )
        bundle = cls(
            model_name=payload["model_name"],
            build_params={k: _from_saved(v) for k, v in dict(payload["build_params"]).items()},
            state_dict=payload["state_dict"],
            x_scaler=payload["x_scaler"],
            y_scaler=payload["y_scaler"],
            meta=payload["meta"],
        )
        bundle.check_scalers(name)
        return bundle

    def check_scalers(self, name: str = "the bundle") -> None:
        """Raise unless both scalers hold finite ``scale`` and ``offset`` vectors of the right length.

        The input scaler has one entry per feature (``meta['feature_names']`` when recorded).
        """
        features = self.meta.get("feature_names") if isinstance(self.meta, dict) else None
        for which, scaler, size in (
            ("x_scaler", self.x_scaler, len(features) if isinstance(features, list | tuple) else None),
            ("y_scaler", self.y_scaler, None),
        ):
            for key in ("scale", "offset"):
                try:
                    values = np.asarray(scaler[key], dtype=np.float64)
                except (KeyError, TypeError, ValueError) as e:
                    raise CityAgentError(
                        f"model bundle {name} has no numeric {which} {key}; retrain the run, or restore the file"
                    ) from e
                wrong_size = values.ndim != 1 or values.size == 0 or (size is not None and values.size != size)
                if wrong_size:
                    want = f"{size} value(s)" if size is not None else "a non-empty vector"
                    raise CityAgentError(
                        f"model bundle {name} has a {which} {key} of shape {list(values.shape)} where "
                        f"{want} are expected; retrain the run, or restore the file"
                    )
                bad = np.flatnonzero(~np.isfinite(values))
                if bad.size:
                    which_ones = ", ".join(str(features[i]) if size is not None else f"#{i}" for i in bad[:3]) + (
                        ", …" if bad.size > 3 else ""
                    )
                    raise CityAgentError(
                        f"model bundle {name} has {bad.size} non-finite {which} {key} value(s) ({which_ones}): the "
                        "scaler was fitted on NaN/inf data; clean the hub and retrain the run"
                    )
