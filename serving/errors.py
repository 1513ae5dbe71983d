"""Errors the data plane raises; the servicer maps each to its gRPC status code and sends the message."""

import grpc

from cityagent.errors import CityAgentError


class ServingError(CityAgentError):
    """A request the server cannot answer; `code` is the gRPC status a client sees."""

    code = grpc.StatusCode.INTERNAL


class ModelNotFound(ServingError):
    code = grpc.StatusCode.NOT_FOUND


class InvalidInput(ServingError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class QueueFull(ServingError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class ModelUnavailable(ServingError):
    code = grpc.StatusCode.UNAVAILABLE


class ModelLoadError(ServingError):
    """A model version that cannot be loaded or fails its smoke inference; the old version keeps serving."""

    code = grpc.StatusCode.UNAVAILABLE


class ShuttingDown(ServingError):
    """A request that arrived after shutdown began: another replica (or this one, restarted) answers it."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self) -> None:
        super().__init__("the server is shutting down; reconnect and resend unanswered requests.")
