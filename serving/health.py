"""The standard grpc.health.v1 service: NOT_SERVING until every model is loaded, then SERVING."""

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from cityagent.serving.proto import inference_pb2

INFERENCE_SERVICE = inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
_SERVICES = ("", INFERENCE_SERVICE)  # "" is the whole server, as grpc-health-probe asks by default


class Health:
    """Wraps grpc's asyncio HealthServicer with the two states the server goes through."""

    def __init__(self) -> None:
        self.servicer = health_aio.HealthServicer()

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in _SERVICES:
            await self.servicer.set(service, status)

    async def shutdown(self) -> None:
        """Answer NOT_SERVING from now on (load balancers stop sending) while in-flight requests finish."""
        await self.servicer.enter_graceful_shutdown()
