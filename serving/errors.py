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
