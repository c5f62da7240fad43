"""The catalogue of CLI operations: one per RPC of the four services, read from their descriptors."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from customlabels.dataset.v1 import dataset_service_pb2, dataset_service_pb2_grpc
from customlabels.project.v1 import project_service_pb2, project_service_pb2_grpc
from customlabels.serving.v1 import serving_service_pb2, serving_service_pb2_grpc
from customlabels.training.v1 import training_service_pb2, training_service_pb2_grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from services.common import clients
from services.common.auth import GrpcSecurity


@dataclass(frozen=True)
class Service:
    """One of our gRPC services: the key of its address setting, its descriptor and its stub."""

    key: str
    descriptor: ServiceDescriptor
    stub: Callable[[grpc.Channel], Any]


SERVICES: tuple[Service, ...] = (
    Service(
        "project",
        project_service_pb2.DESCRIPTOR.services_by_name["ProjectService"],
        project_service_pb2_grpc.ProjectServiceStub,
    ),
    Service(
        "dataset",
        dataset_service_pb2.DESCRIPTOR.services_by_name["DatasetService"],
        dataset_service_pb2_grpc.DatasetServiceStub,
    ),
    Service(
        "training",
        training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"],
        training_service_pb2_grpc.TrainingServiceStub,
    ),
    Service(
        "serving",
        serving_service_pb2.DESCRIPTOR.services_by_name["ServingService"],
        serving_service_pb2_grpc.ServingServiceStub,
    ),
)

# RPCs that services (and the console) call on each other; callable from the CLI, but not advertised.
INTERNAL = frozenset(
    {
        "GetProject",
        "SetResourceTags",
        "DeleteResourceTags",
        "AuthorizeCopyProjectVersion",
        "ListProjectDatasets",
        "ExportDatasetEntries",
        "GetDatasetImage",
        "GetProjectVersion",
        "CountProjectVersions",
        "GetModelArtifact",
        "UpdateVersionStatus",
    }
)


def kebab(name: str) -> str:
    """Returns the command name of an RPC, as the AWS CLI spells it (ImportS3Folder -> import-s3-folder)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


@dataclass(frozen=True)
class Operation:
    """One RPC as a CLI command."""

    service: Service
    method: MethodDescriptor

    @property
    def name(self) -> str:
        """Returns the AWS operation name (the RPC name), e.g. CreateProject."""
        return self.method.name

    @property
    def command(self) -> str:
        """Returns the kebab-case command, e.g. create-project."""
        return kebab(self.method.name)

    @property
    def hidden(self) -> bool:
        """Tells whether the RPC is internal (left out of --help)."""
        return self.method.name in INTERNAL

    @property
    def request_class(self) -> type[Message]:
        """Returns the generated request message class."""
        return message_factory.GetMessageClass(self.method.input_type)

    def invoke(
        self, addr: str, request: Message, timeout: float, security: GrpcSecurity | None = None
    ) -> Iterator[Message]:
        """Calls the RPC at `addr`; yields its response, or each message of a server stream.

        Raises grpc.RpcError as the call failed; the channel is closed once the responses are read.
        """
        with clients.channel(addr, security) as channel:
            rpc = getattr(self.service.stub(channel), self.method.name)
            if self.method.server_streaming:
                yield from rpc(request, timeout=timeout)
            else:
                yield rpc(request, timeout=timeout)


def operations() -> list[Operation]:
    """Returns every operation the CLI offers, in service then proto order.

    Client-streaming RPCs (UploadImages) take no flags-shaped request, so they are left out here.
    """
    return [
        Operation(service, method)
        for service in SERVICES
        for method in service.descriptor.methods
        if not method.client_streaming
    ]


def public_operations() -> dict[str, Operation]:
    """The operations served over HTTP (the edge, the console), by AWS name: public unary RPCs only."""
    return {op.name: op for op in operations() if not op.hidden and not op.method.server_streaming}
