"""Transport-free request and response: what the servicer decodes into and the data plane answers with."""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class InferRequest:
    """One inference request; every input array's first axis is the batch axis when the model has one.

    Args:
        model_name: name on the wire (the registered model name or the local model's name).
        model_version: "" for the default version, else a version string as ModelMetadata lists it.
        inputs: input name -> array (views of the request bytes, read-only).
        outputs: requested output names; empty means all.
    """

    model_name: str
    model_version: str = ""
    id: str = ""
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


@dataclass
class InferResponse:
    model_name: str
    model_version: str
    id: str
    outputs: dict[str, np.ndarray]
