"""Wiring of the training service.

Until its issue lands, the service runs with the generated base servicer: reflection lists every
method and each answers UNIMPLEMENTED, so clients and the stack can already rely on it being there.
"""

from __future__ import annotations

from customlabels.training.v1 import training_service_pb2 as pb
from customlabels.training.v1 import training_service_pb2_grpc as pb_grpc

from services.common import logs
from services.common.config import Config
from services.common.server import RunningServer, create_server, serve

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TrainingService"].full_name


def build_server(config: Config) -> RunningServer:
    """Starts a training server on config.listen_addr (port 0 allowed) and marks it SERVING."""
    servicer = pb_grpc.TrainingServiceServicer()
    running = create_server(
        config.listen_addr,
        [lambda server: pb_grpc.add_TrainingServiceServicer_to_server(servicer, server)],
        [SERVICE_NAME],
        workers=config.grpc_workers,
    )
    running.set_serving(True)
    return running


def main() -> None:
    """Runs the training service process until SIGTERM."""
    config = Config.from_env("training")
    logs.setup("training", config.log_level)
    serve(build_server(config), config.shutdown_grace_s)
