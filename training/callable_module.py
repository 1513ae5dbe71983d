"""Let a module be called as its main function: ``cityagent.training.fit(config)`` as the docs and notebooks write
it, and ``from cityagent.training import fit; fit(config)``, where Python would otherwise say 'module object is not
callable' (the module and its function share the name)."""

import functools
import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Calling the module ``module_name`` calls ``function``; everything else about the module stays as it was."""

    class CallableModule(types.ModuleType):
        @functools.wraps(function)
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
