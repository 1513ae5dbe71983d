"""Request parameters: the few that change nothing here are accepted, any other is refused by name.

OIP `parameters` ask for behaviour (Triton's sequence_id/sequence_start/sequence_end, priority, timeout, an output's
`classification`, shared-memory regions) that cityagent does not implement; answering the full tensor anyway would
answer a different question than the one asked, so such a request is INVALID_ARGUMENT. What is accepted are format
hints that a gRPC answer satisfies as it is (outputs are always raw little-endian bytes). tritonclient.grpc sends no
parameters at all unless a caller asks for one of those features.
"""

from collections.abc import Mapping

from cityagent.serving.errors import InvalidInput
from cityagent.serving.proto import inference_pb2 as pb

# MLServer's codecs tag requests and tensors with content_type (and headers); KServe and Triton's HTTP conventions
# put binary_data / binary_data_size on tensors.
REQUEST = frozenset({"content_type", "headers"})
INPUT = frozenset({"content_type", "binary_data_size"})
OUTPUT = frozenset({"content_type", "binary_data"})
_WHAT = "cityagent serves no sequences, priorities, server-side timeouts, classification or shared memory"


def check_parameters(request: pb.ModelInferRequest) -> None:
    """Raise InvalidInput naming the parameters of the request, or of its first input or output, not accepted."""
    _check(request.parameters, REQUEST, "request")
    for tensor in request.inputs:
        _check(tensor.parameters, INPUT, f"input '{tensor.name}'")
    for output in request.outputs:
        _check(output.parameters, OUTPUT, f"output '{output.name}'")


def _check(parameters: Mapping[str, pb.InferParameter], accepted: frozenset[str], where: str) -> None:
    refused = sorted(set(parameters) - accepted)
    if refused:
        names = ", ".join(f"'{k}'" for k in refused)
        what, it = (f"parameter {names} is", "it") if len(refused) == 1 else (f"parameters {names} are", "them")
        raise InvalidInput(f"{where} {what} not supported ({_WHAT}); leave {it} out.")
