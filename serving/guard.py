"""Bytes that are not a valid protobuf message get INVALID_ARGUMENT, not grpc's bare UNKNOWN plus a logged traceback.

grpc.aio decodes requests before any servicer code runs and answers a decode failure with UNKNOWN (no details)
while logging a stack trace per request, so garbage from one client could flood the log. This interceptor swaps
in a deserializer that never raises and refuses undecodable requests itself, in one line that says why.
"""

import grpc

_PREFIX = "/inference."  # only the OIP service; health and reflection keep grpc's own handling


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserialize):
    def parse(data: bytes):
        try:
            return deserialize(data)
        except Exception as e:  # protobuf raises DecodeError, but be broad: this runs inside grpc's C core
            return _Undecodable(e)

    return parse


def _refuse_message(method: str, bad: _Undecodable) -> str:
    return f"the request to {method} is not a valid protobuf message ({bad.error}); send a serialized request."


class DecodeGuard(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.request_deserializer is None or not method.startswith(_PREFIX):
            return handler
        parse = _tolerant(handler.request_deserializer)
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request, context):
                if isinstance(request, _Undecodable):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _refuse_message(method, request))
                return await inner(request, context)

            return handler._replace(unary_unary=unary, request_deserializer=parse)
        if handler.stream_stream is not None:
            inner_stream = handler.stream_stream

            async def stream(request_iterator, context):
                async def checked():
                    async for request in request_iterator:
                        if isinstance(request, _Undecodable):
                            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _refuse_message(method, request))
                        yield request

                async for response in inner_stream(checked(), context):
                    yield response

            return handler._replace(stream_stream=stream, request_deserializer=parse)
        return handler
