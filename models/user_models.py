"""Models of your own: where a registered model lives, so other processes can register it too.

A builder registered in an importable module is named by that module (``model.module``), which Ray workers,
``cityagent export`` and ``evaluate`` import; one registered in ``__main__`` (a notebook or script) cannot be imported
elsewhere, so its registry entry travels with a Ray job (pickled by value, as cloudpickle does for ``__main__``).
"""

import importlib
import os
import sys

from cityagent.errors import ConfigError
from cityagent.models.registry import ModelInfo, list_models, model_info, register

OWN_PACKAGE = "cityagent."
MAIN = "__main__"


def user_module(name: str) -> str | None:
    """The module that registered model ``name`` (``__main__`` for a notebook's), or None for cityagent's own."""
    module = getattr(model_info(name).builder, "__module__", None)
    return None if not module or module.startswith(OWN_PACKAGE) else module


def import_models(module: str) -> None:
    """Import ``module`` (dotted, e.g. ``my_package.models``), whose ``@register`` decorators add its models.

    The working directory is searched last, as ``python -m`` would (``cityagent``'s own script would not), so
    ``my_models`` names ``my_models.py`` beside the command. Errors inside the module are raised as they are: the
    traceback points at its own lines.

    Raises:
        ConfigError: the module itself cannot be found.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(f"{e.name}.")):
            raise  # a module that is there but imports something missing: the user's own traceback says which
        raise ConfigError(
            f"module {module!r} cannot be imported ({e}); give a module on the Python path (an installed "
            f"package, or my_models for my_models.py in the working directory {cwd})"
        ) from e


def ensure_registered(name: str, module: str | None) -> None:
    """Register model ``name`` here by importing ``module`` (what a bundle or config recorded), when it is not yet.

    Raises:
        ConfigError: it was registered in ``__main__`` (not importable here), or ``module`` does not register it.
    """
    if module is None or name in list_models():
        return
    if module == MAIN:
        raise ConfigError(
            f"model {name!r} was registered in a notebook or script (__main__) that this process has not run; run "
            "its @register code here first, or move it into a module and train with model.module set to it"
        )
    try:
        import_models(module)
    except ConfigError as e:
        raise ConfigError(f"model {name!r} is registered by its module, but {e}") from e
    if name not in list_models():
        raise ConfigError(f"model.module {module!r} was imported but registers no model {name!r}; check its @register")


def main_model(name: str) -> ModelInfo | None:
    """The registry entry of ``name`` when registered in ``__main__``, to ship to Ray workers (see ``adopt``)."""
    info = model_info(name)
    return info if getattr(info.builder, "__module__", None) == MAIN else None


def adopt(info: ModelInfo | None) -> None:
    """Register a model the driver shipped (``main_model``) in this process (a Ray worker or Tune trial)."""
    if info is not None:
        register(info.name, info.domain, info.kind)(info.builder)
