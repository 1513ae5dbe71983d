"""A model's declared inputs and outputs, and the check that a request's arrays fit them."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cityagent.serving.datatypes import oip_name
from cityagent.serving.errors import InvalidInput

if TYPE_CHECKING:
    from cityagent.serving.input_check import ChannelFacts


@dataclass(frozen=True)
class TensorSpec:
    """One declared tensor; -1 marks a dynamic dimension (axis 0 is the batch axis when it is dynamic)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    facts: "ChannelFacts | None" = None  # the exporter's channel ranges and one-hot groups, when it recorded them

    @property
    def batched(self) -> bool:
        """True when every input and output has a dynamic first axis, so requests can be stacked along it."""
        return all(t.shape and t.shape[0] == -1 for t in (*self.inputs, *self.outputs))

    def check_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        """Raise InvalidInput naming the first input that does not fit, and what was expected."""
        expected = {t.name for t in self.inputs}
        unknown = sorted(set(inputs) - expected)
        if unknown:
            raise InvalidInput(f"input '{unknown[0]}' is not an input of this model; expected {sorted(expected)}.")
        batch = None
        for spec in self.inputs:
            if spec.name not in inputs:
                raise InvalidInput(f"input '{spec.name}' is missing; the model expects {sorted(expected)}.")
            array = inputs[spec.name]
            _check_one(spec, array)
            if self.facts is not None and spec.name == self.facts.name:
                self.facts.check(array)
            if self.batched:
                if batch is not None and array.shape[0] != batch:
                    raise InvalidInput(f"input '{spec.name}' has batch {array.shape[0]} but another input has {batch}.")
                batch = array.shape[0]

    def check_outputs(self, requested: list[str]) -> None:
        names = [t.name for t in self.outputs]
        for name in requested:
            if name not in names:
                raise InvalidInput(f"output '{name}' is not an output of this model; expected one of {names}.")


def _check_one(spec: TensorSpec, array: np.ndarray) -> None:
    datatype = oip_name(array.dtype)
    if datatype != spec.datatype:
        raise InvalidInput(f"input '{spec.name}' has datatype {datatype} but the model expects {spec.datatype}.")
    shape = array.shape
    if len(shape) != len(spec.shape) or any(d != -1 and d != s for d, s in zip(spec.shape, shape, strict=True)):
        want = ", ".join("-1" if d == -1 else str(d) for d in spec.shape)
        raise InvalidInput(f"input '{spec.name}' has shape {list(shape)} but the model expects [{want}].")
    if any(s == 0 for s in shape):
        raise InvalidInput(f"input '{spec.name}' has shape {list(shape)}; every dimension must be >= 1.")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInput(f"input '{spec.name}' contains NaN or Inf; send finite values (real units).")
