"""Evaluation protocols: a hub → train/val/test windows, scalers and graph, by name.

``build_task(hub, "strict")`` is leak-free; ``tgcn``, ``uctb``, ``gsnet`` and ``eastnet`` reproduce the published
code's windows, splits and scalers so numbers compare with the papers (``TaskData.notes`` says where they leak).
"""

from cityagent.hub.protocols import eastnet, gsnet, strict, tgcn, uctb  # noqa: F401  (registers the builders)
from cityagent.hub.protocols.registry import PROTOCOLS, build_task, protocol_params, register
from cityagent.hub.protocols.task import TaskData

__all__ = ["PROTOCOLS", "TaskData", "build_task", "protocol_params", "register"]
