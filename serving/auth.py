"""Optional bearer-token auth: 'authorization: Bearer <token>' metadata on every call, else UNAUTHENTICATED."""

import hmac
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc

from cityagent.errors import ConfigError
from cityagent.serving.config import AuthConfig

_MESSAGE = "missing or wrong bearer token; send metadata 'authorization: Bearer <token>'."


def load_token(cfg: AuthConfig) -> str:
    """The token from `token_file` (wins) or the `token_env` variable; ConfigError when auth is on and none is set."""
    if cfg.token_file is not None:
        try:
            token = Path(cfg.token_file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"auth.token_file {cfg.token_file} cannot be read ({e.strerror}); fix the path.") from e
        if not token:
            raise ConfigError(
                f"auth.token_file {cfg.token_file} is empty; write the token into it (the file wins over "
                f"${cfg.token_env})."
            )
    else:
        token = os.environ.get(cfg.token_env, "").strip()
    if not token:
        raise ConfigError(f"auth is enabled but no token is set; put one in ${cfg.token_env} or auth.token_file.")
    return token


class TokenAuth(grpc.aio.ServerInterceptor):
    """Refuses calls without the token, except to `open_services` (health by default, for load balancers).

    Args:
        token: the shared secret (compared in constant time).
        open_services: full service names callable without a token, e.g. 'grpc.health.v1.Health'.
    """

    def __init__(self, token: str, open_services: list[str]) -> None:
        self._expected = f"bearer {token}".encode()
        self._open = set(open_services)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        service = handler_call_details.method.lstrip("/").split("/", 1)[0]
        if service in self._open or self._authorised(handler_call_details.invocation_metadata or ()):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        return None if handler is None else _refusal(handler)

    def _authorised(self, metadata: Sequence[tuple[str, str | bytes]]) -> bool:
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                return hmac.compare_digest(f"{scheme.lower()} {token.strip()}".encode(), self._expected)
        return False


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same streaming kind as `handler` that answers UNAUTHENTICATED."""

    async def refuse(_request: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _MESSAGE)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    # No request deserializer: an unauthenticated caller's bytes are never parsed.
    return make(refuse, request_deserializer=None, response_serializer=handler.response_serializer)
