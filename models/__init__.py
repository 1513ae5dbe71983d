"""cityagent.models: plain nn.Modules and classical baselines behind a name → builder registry.

``build_model(name, **params)`` builds any of ``list_models()``; importing this package registers them all.
"""

from cityagent.models import classical, demand, risk, traffic  # noqa: F401  (importing registers the builders)
from cityagent.models.registry import ModelInfo, build_model, check_param_names, list_models, model_info, register

__all__ = ["ModelInfo", "build_model", "check_param_names", "list_models", "model_info", "register"]
