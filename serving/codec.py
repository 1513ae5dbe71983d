"""Protobuf <-> numpy: decode ModelInferRequest tensors (zero-copy views of raw bytes), encode raw outputs.

Decoding checks only what the wire itself says (names unique, datatype known, bytes match shape, no parameters
asking for what is not served); whether the tensors fit the model is the model signature's job (signature.py).
"""

import math
from typing import TYPE_CHECKING

import numpy as np

from cityagent.serving.datatypes import NUMPY, TYPED_FIELD, oip_name
from cityagent.serving.errors import InvalidInput
from cityagent.serving.parameters import check_parameters
from cityagent.serving.payload import InferRequest, InferResponse
from cityagent.serving.proto import inference_pb2 as pb

if TYPE_CHECKING:  # the data plane imports the store; the codec needs only the type
    from cityagent.serving.dataplane import ModelInfo

# Counted with zero dimensions as 1: numpy refuses even empty arrays like [0, 2**62] whose nominal size overflows.
MAX_ELEMENTS = 2**40
_ALL_TYPED = sorted(set(TYPED_FIELD.values()) | {"bytes_contents"})


def decode_request(request: pb.ModelInferRequest) -> InferRequest:
    """Turn a ModelInferRequest into arrays; raises InvalidInput naming the input and what was expected."""
    check_parameters(request)
    raws = request.raw_input_contents
    if raws and len(raws) != len(request.inputs):
        raise InvalidInput(
            f"request has {len(raws)} raw_input_contents for {len(request.inputs)} inputs; "
            "send one per input, in order."
        )
    inputs: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name in inputs:
            raise InvalidInput(f"input '{tensor.name}' appears twice; send each input once.")
        inputs[tensor.name] = decode_tensor(tensor, raws[i] if raws else None)
    outputs = [o.name for o in request.outputs]
    if len(set(outputs)) != len(outputs):
        raise InvalidInput(f"requested outputs {outputs} repeat a name; ask for each output once.")
    return InferRequest(
        model_name=request.model_name,
        model_version=request.model_version,
        id=request.id,
        inputs=inputs,
        outputs=outputs,
    )


def decode_tensor(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> np.ndarray:
    """One input tensor from raw bytes (a read-only view, no copy) or from its typed contents."""
    name, datatype = tensor.name, tensor.datatype
    if datatype not in NUMPY:
        raise InvalidInput(f"input '{name}' has datatype '{datatype}'; expected one of {sorted(NUMPY)}.")
    shape = list(tensor.shape)
    if not shape:
        raise InvalidInput(f"input '{name}' has shape [] (a scalar); give its full shape, as ModelMetadata lists it.")
    if any(d < 1 for d in shape):  # -1 marks a free axis in ModelMetadata; a request gives its real size
        raise InvalidInput(
            f"input '{name}' has shape {shape}; every dimension must be >= 1 (ModelMetadata's -1 stands for the "
            "batch size you send)."
        )
    if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
        raise InvalidInput(f"input '{name}' has shape {shape}; a tensor may hold at most {MAX_ELEMENTS} elements.")
    dtype = NUMPY[datatype]
    count = math.prod(shape)
    if raw is not None:
        if tensor.HasField("contents"):
            raise InvalidInput(f"input '{name}' has both typed contents and raw_input_contents; send only one.")
        need = count * dtype.itemsize
        if len(raw) != need:
            raise InvalidInput(
                f"input '{name}' has {len(raw)} raw bytes but shape {shape} of {datatype} needs {need} bytes."
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)  # read-only view of the request bytes
    return _typed(tensor, name, datatype, shape, count)


def _typed(
    tensor: pb.ModelInferRequest.InferInputTensor, name: str, datatype: str, shape: list[int], count: int
) -> np.ndarray:
    field = TYPED_FIELD.get(datatype)
    if field is None:
        raise InvalidInput(f"input '{name}' of datatype {datatype} must come in raw_input_contents.")
    stray = [f for f in _ALL_TYPED if f != field and len(getattr(tensor.contents, f))]
    if stray:
        raise InvalidInput(f"input '{name}' of datatype {datatype} carries {stray[0]}; put its values in {field}.")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise InvalidInput(f"input '{name}' has {len(values)} values in {field} but shape {shape} needs {count}.")
    dtype = NUMPY[datatype]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if count and (min(values) < info.min or max(values) > info.max):
            raise InvalidInput(f"input '{name}' has values outside the {datatype} range [{info.min}, {info.max}].")
    return np.asarray(values, dtype=dtype).reshape(shape)


def encode_response(response: InferResponse) -> pb.ModelInferResponse:
    """Answer with raw_output_contents (the only form tritonclient's as_numpy() decodes)."""
    out = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version, id=response.id)
    for name, array in response.outputs.items():
        datatype = oip_name(array.dtype)
        out.outputs.add(name=name, datatype=datatype, shape=array.shape)
        out.raw_output_contents.append(np.ascontiguousarray(array, dtype=NUMPY[datatype]).tobytes())
    return out


# what a client needs to build the input and read the output, repeated on the tensor it is about (JSON strings)
INPUT_FACTS = ("feature_names", "nodes", "step", "input_offsets", "timezone", "calendar", "input_ranges", "one_hot")
OUTPUT_FACTS = ("units", "nodes", "step", "target_offsets", "quantiles", "interval_calibration")


def encode_metadata(info: "ModelInfo") -> pb.ModelMetadataResponse:
    """ModelMetadataResponse; the model's metadata_props travel as string parameters (field 6, an extension)."""
    out = pb.ModelMetadataResponse(name=info.name, versions=info.versions, platform=info.platform)
    lone = len(info.inputs) == 1 and len(info.outputs) == 1  # every cityagent model: the facts are about x and y
    for specs, target, keys in ((info.inputs, out.inputs, INPUT_FACTS), (info.outputs, out.outputs, OUTPUT_FACTS)):
        for spec in specs:
            tensor = target.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
            for key in keys if lone else ():
                if key in info.parameters:
                    tensor.parameters[key].string_param = info.parameters[key]
    for key, value in info.parameters.items():
        out.parameters[key].string_param = value
    return out
