"""Bytes that are not a valid protobuf message get INVALID_ARGUMENT, not grpc's bare UNKNOWN plus a logged traceback.

grpc.aio decodes requests before any servicer code runs and answers a decode failure with UNKNOWN (no details)
while logging a stack trace per request, so garbage from one client could flood the log. The OIP service is
therefore registered with deserializers that never raise, and its methods refuse undecodable requests themselves,
in one line that says why. The wrapping happens once at registration, not per call as an interceptor would: an
interceptor costs every request ~0.1 ms of Python (benchmarks/serving.py).
"""

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from cityagent.serving.proto import inference_pb2_grpc as pb_grpc


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


class _RefusedInStream(Exception):
    """Raised where a stream's requests are read (possibly another task); the handler's own task aborts the call,
    since grpc.aio's context.abort from a side task can leave the call hanging."""


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as e:  # protobuf raises DecodeError, but be broad: this runs inside grpc's C core
            return _Undecodable(e)

    return parse


def _refuse_message(method: str, bad: _Undecodable) -> str:
    return f"the request to {method} is not a valid protobuf message ({bad.error}); send a serialized request."


def guard_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The same handler with a deserializer that never raises and a method that refuses what did not decode."""
    if handler.request_deserializer is None:
        return handler
    parse = _tolerant(handler.request_deserializer)
    if handler.unary_unary is not None:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _refuse_message(method, request))
            return await inner(request, context)

        return handler._replace(unary_unary=unary, request_deserializer=parse)
    if handler.stream_stream is not None:
        inner_stream = handler.stream_stream

        async def stream(request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async def checked() -> AsyncIterator[Any]:
                async for request in request_iterator:
                    if isinstance(request, _Undecodable):
                        raise _RefusedInStream(_refuse_message(method, request))
                    yield request

            refused: list[BaseException] = []
            try:
                async for response in inner_stream(checked(), context):
                    yield response
            except* _RefusedInStream as group:  # a TaskGroup in the servicer wraps it in an ExceptionGroup
                refused = _leaves(group)
            if refused:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(refused[0]))

        return handler._replace(stream_stream=stream, request_deserializer=parse)
    return handler


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


class _Capture:
    """Stands in for a server to collect the handlers the generated registration function builds."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers also arrive through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service, self.handlers = service, handlers


def add_guarded_inference_service(servicer: pb_grpc.GRPCInferenceServiceServicer, server: grpc.aio.Server) -> None:
    """Register the OIP servicer on `server` with every method guarded (the generated code stays the source of
    method names, serializers and arities)."""
    captured = _Capture()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, captured)
    if not captured.service:
        raise RuntimeError("the generated OIP registration registered no methods; regenerate serving/proto")
    handlers = {name: guard_handler(f"/{captured.service}/{name}", h) for name, h in captured.handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(captured.service, handlers),))
    server.add_registered_method_handlers(captured.service, handlers)
