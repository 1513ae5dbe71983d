"""The OIP gRPC servicer: translate protobuf to the data plane and back, map errors to status codes. Nothing else."""

import asyncio
import logging
from collections.abc import AsyncIterator

from cityagent.serving.codec import decode_request, encode_metadata, encode_response
from cityagent.serving.dataplane import DataPlane
from cityagent.serving.errors import ServingError
from cityagent.serving.proto import inference_pb2 as pb
from cityagent.serving.proto import inference_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The OIP service.

    Args:
        dataplane: what answers.
        stream_in_flight: requests of one ModelStreamInfer stream running at once (`max_stream_in_flight`).
    """

    def __init__(self, dataplane: DataPlane, stream_in_flight: int = 32) -> None:
        self.dataplane, self.stream_in_flight = dataplane, stream_in_flight

    async def ServerLive(self, request, context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def ServerReady(self, request, context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def ModelReady(self, request, context) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.dataplane.model_ready(request.name, request.version))

    async def ServerMetadata(self, request, context) -> pb.ServerMetadataResponse:
        name, version, extensions = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=name, version=version, extensions=extensions)

    async def ModelMetadata(self, request, context) -> pb.ModelMetadataResponse:
        try:
            return encode_metadata(self.dataplane.model_metadata(request.name, request.version))
        except ServingError as e:
            error = e
        await context.abort(error.code, str(error))

    async def ModelInfer(self, request, context) -> pb.ModelInferResponse:
        try:
            return await self._infer(request)
        except ServingError as e:
            error = e
        await context.abort(error.code, str(error))

    async def ModelStreamInfer(self, request_iterator, context) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Requests of one stream run concurrently (so they can share batches); answers come as they finish.

        At most `stream_in_flight` run or wait to be sent at once: the reader then stops reading, so gRPC flow
        control slows a fast client down, instead of its requests flooding the model's queue (which refuses the
        overflow as 'queue full') or piling up unsent answers.
        """
        answers: asyncio.Queue = asyncio.Queue()
        slots = asyncio.Semaphore(self.stream_in_flight)

        async def answer(request: pb.ModelInferRequest) -> None:
            try:
                await answers.put(pb.ModelStreamInferResponse(infer_response=await self._infer(request)))
            except ServingError as e:
                await answers.put(self._stream_error(request, e))

        async def read() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    async for request in request_iterator:
                        await slots.acquire()  # released once its answer is sent
                        group.create_task(answer(request))
            finally:
                answers.put_nowait(None)  # every request answered (or the stream broke)

        reader = asyncio.create_task(read())
        try:
            while (item := await answers.get()) is not None:
                yield item
                slots.release()
            await reader  # re-raises what broke the stream (e.g. an undecodable request's abort)
        finally:
            reader.cancel()

    def _stream_error(self, request: pb.ModelInferRequest, error: ServingError) -> pb.ModelStreamInferResponse:
        """A failed stream request's answer: its id, model name and version (where served) say which one it was;
        the message names the id too, since tritonclient hands a stream callback only the message of an error."""
        version = self.dataplane.served_version(request.model_name, request.model_version)
        echo = pb.ModelInferResponse(model_name=request.model_name, model_version=version, id=request.id)
        message = f"request '{request.id}': {error}" if request.id else str(error)
        return pb.ModelStreamInferResponse(error_message=message, infer_response=echo)

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        with self.dataplane.observe(request.model_name):
            try:
                return encode_response(await self.dataplane.infer(decode_request(request)))
            except ServingError:
                raise
            except Exception as e:  # a bug must cost one request, never the server
                log.exception("inference on %r failed", request.model_name)
                raise ServingError(f"internal error while serving '{request.model_name}': {type(e).__name__}") from e
