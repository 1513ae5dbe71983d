"""The OIP gRPC servicer: translate protobuf to the data plane and back, map errors to status codes. Nothing else."""

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from cityagent.serving.codec import decode_request, encode_metadata, encode_response
from cityagent.serving.dataplane import DataPlane
from cityagent.serving.errors import ServingError, ShuttingDown
from cityagent.serving.proto import inference_pb2 as pb
from cityagent.serving.proto import inference_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

STATUS_CODE = "status_code"  # parameter of a failed stream request's infer_response: its gRPC status name


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The OIP service.

    Args:
        dataplane: what answers.
        stream_in_flight: requests of one ModelStreamInfer stream running at once (`max_stream_in_flight`).
    """

    def __init__(self, dataplane: DataPlane, stream_in_flight: int = 32) -> None:
        self.dataplane, self.stream_in_flight = dataplane, stream_in_flight

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.dataplane.model_ready(request.name, request.version))

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        name, version, extensions = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=name, version=version, extensions=extensions)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        try:
            return encode_metadata(self.dataplane.model_metadata(request.name, request.version))
        except ServingError as e:
            error = e
        await context.abort(error.code, str(error))

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        try:
            return await self._infer(request, context, admit=True)
        except ServingError as e:
            error = e
        await context.abort(error.code, str(error))

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Requests of one stream run concurrently (so they can share batches); answers come as they finish.

        At most `stream_in_flight` run or wait to be sent at once: the reader then stops reading, so gRPC flow
        control slows a fast client down, instead of its requests flooding the model's queue (which refuses the
        overflow as 'queue full') or piling up unsent answers.

        At shutdown the stream stops reading, answers the requests it has read, and ends with UNAVAILABLE (the
        server is shutting down; reconnect and resend unanswered requests), rather than reading on until gRPC cuts
        it at the end of the grace period.
        """
        answers: asyncio.Queue = asyncio.Queue()
        slots = asyncio.Semaphore(self.stream_in_flight)
        requests = aiter(request_iterator)

        async def answer(request: pb.ModelInferRequest) -> None:
            try:
                response = pb.ModelStreamInferResponse(infer_response=await self._infer(request, context))
            except ServingError as e:
                response = self._stream_error(request, e)
            await answers.put(response)

        async def read(group: asyncio.TaskGroup) -> None:
            while True:
                await slots.acquire()  # released once its answer is sent; taken before reading, so a cut loses none
                request = await anext(requests, None)
                if request is None:
                    return
                group.create_task(answer(request))

        async def run() -> bool:
            """Read and answer until the client ends its side (False) or the server stops taking requests (True)."""
            try:
                async with asyncio.TaskGroup() as group:
                    reading = group.create_task(read(group))
                    stopping = group.create_task(self.dataplane.stopping.wait())
                    await asyncio.wait((reading, stopping), return_when=asyncio.FIRST_COMPLETED)
                    stopping.cancel()
                    if reading.done():
                        return False
                    reading.cancel()  # the answers already started still finish in the group
                    return True
            finally:
                answers.put_nowait(None)  # every request read is answered (or the stream broke)

        runner = asyncio.create_task(run())
        try:
            while (item := await answers.get()) is not None:
                yield item
                slots.release()
            if await runner:  # re-raises what broke the stream (e.g. an undecodable request's abort)
                context.set_code(ShuttingDown.code)
                context.set_details(str(ShuttingDown()))
        finally:
            runner.cancel()

    def _stream_error(self, request: pb.ModelInferRequest, error: ServingError) -> pb.ModelStreamInferResponse:
        """A failed stream request's answer: its id, model name and version (where served) say which one it was;
        the message names the id too, since tritonclient hands a stream callback only the message of an error."""
        version = self.dataplane.served_version(request.model_name, request.model_version)
        echo = pb.ModelInferResponse(model_name=request.model_name, model_version=version, id=request.id)
        # The status a unary call would end with, machine-readable, so a client can tell what is worth a retry
        # (RESOURCE_EXHAUSTED, UNAVAILABLE) from what is not (INVALID_ARGUMENT, NOT_FOUND) without parsing prose.
        echo.parameters[STATUS_CODE].string_param = error.code.name
        message = f"request '{request.id}': {error}" if request.id else str(error)
        return pb.ModelStreamInferResponse(error_message=message, infer_response=echo)

    async def _infer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext, admit: bool = False
    ) -> pb.ModelInferResponse:
        """Decode, infer and encode, counted in the metrics; `admit` refuses a new unary call once shutdown has begun
        (a stream's requests are not refused: the stream stops reading instead, and answers what it has read)."""
        with self.dataplane.observe(request.model_name, expired=lambda: _expired(context)):
            if admit:
                self.dataplane.admit()
            try:
                return encode_response(await self.dataplane.infer(decode_request(request)))
            except ServingError:
                raise
            except Exception as e:  # a bug must cost one request, never the server
                log.exception("inference on %r failed", request.model_name)
                raise ServingError(f"internal error while serving '{request.model_name}': {type(e).__name__}") from e


def _expired(context: grpc.aio.ServicerContext) -> bool:
    """Whether the call's deadline has passed (False for a call without one)."""
    remaining = context.time_remaining()
    return remaining is not None and remaining <= 0
