"""Authentication of the gRPC services: bearer token (on in the stack), off, and mutual TLS.

The project service stands for every service: they all start through services/common/server.py,
which takes its settings from the environment as a deployment gives them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from customlabels.project.v1 import project_service_pb2 as pj
from customlabels.project.v1 import project_service_pb2_grpc as pj_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg_pool import ConnectionPool

from scripts.inprocess import LocalServices
from services.cli.__main__ import main as cli_main
from services.common import clients, db, errors
from services.common.auth import GrpcSecurity
from services.common.config import ConfigError
from services.common.server import RunningServer
from services.project import app as project_app
from services.project.peers import GrpcPeers
from tests.conftest import service_config

TLS_KEYS = ("CUSTOMLABELS_TLS_CERT_FILE", "CUSTOMLABELS_TLS_KEY_FILE", "CUSTOMLABELS_TLS_CA_FILE")


def create_project(channel: grpc.Channel) -> str:
    name = f"auth-{uuid.uuid4().hex[:10]}"
    return (
        pj_grpc.ProjectServiceStub(channel)
        .CreateProject(pj.CreateProjectRequest(project_name=name), timeout=10)
        .project_arn
    )


def refused_as_unrecognized(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        create_project(channel)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert errors.aws_name_of(raised.value) == "UnrecognizedClientException"


def health(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def test_the_stack_demands_its_token_but_health_and_reflection_stay_open(
    stack: LocalServices, api_token: str
) -> None:
    with grpc.insecure_channel(stack.project_addr) as bare:
        refused_as_unrecognized(bare)
        assert health(bare) == health_pb2.HealthCheckResponse.SERVING
    with clients.channel(stack.project_addr, GrpcSecurity(token="not-" + api_token)) as wrong:
        refused_as_unrecognized(wrong)
    with clients.channel(stack.project_addr, GrpcSecurity(token=api_token)) as right:
        assert create_project(right).startswith("arn:aws:rekognition:")


@pytest.fixture
def project_server(stack: LocalServices, database_url: str) -> Iterator[Callable[[], str]]:
    """`start()`: a project service built with whatever the environment says now (module's database)."""
    started: list[tuple[RunningServer, ConnectionPool, GrpcPeers]] = []

    def start() -> str:
        pool = db.create_pool(database_url, project_app.SCHEMA)
        peers = GrpcPeers(stack.dataset_addr, stack.training_addr)
        running = project_app.build_server(
            service_config("project", database_url), project_app.Deps(pool=pool, peers=peers)
        )
        started.append((running, pool, peers))
        return f"127.0.0.1:{running.port}"

    yield start
    for running, pool, peers in started:
        running.stop(0)
        peers.close()
        pool.close()


def test_without_a_token_the_api_is_open(
    project_server: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUSTOMLABELS_API_TOKEN")
    addr = project_server()
    with grpc.insecure_channel(addr) as bare:
        assert create_project(bare)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0].subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a certificate for 127.0.0.1 signed by it (used by server and clients), and a stranger's."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, rogue_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _cert("customlabels test CA", ca_key, None, ca=True)
    rogue_ca = _cert("someone else's CA", rogue_key, None, ca=True)
    leaf = _cert("customlabels service", leaf_key, (ca, ca_key), server=True)
    rogue = _cert("customlabels service", leaf_key, (rogue_ca, rogue_key), server=True)
    files = {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "cert": _pem(leaf, leaf_key)[0],
        "key": _pem(leaf, leaf_key)[1],
        "rogue_cert": rogue.public_bytes(serialization.Encoding.PEM),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


def test_mutual_tls_admits_only_clients_with_a_certificate_of_the_ca(
    project_server: Callable[[], str], pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUSTOMLABELS_API_TOKEN")
    for key, name in zip(TLS_KEYS, ("cert", "key", "ca"), strict=True):
        monkeypatch.setenv(key, str(pki[name]))
    addr = project_server()
    member = GrpcSecurity.from_env()
    assert member.tls and member.token is None
    with clients.channel(addr, member) as channel:
        assert create_project(channel)
        assert health(channel) == health_pb2.HealthCheckResponse.SERVING
    stranger = GrpcSecurity(
        cert=pki["rogue_cert"].read_bytes(), key=pki["key"].read_bytes(), ca=pki["ca"].read_bytes()
    )
    anonymous = grpc.secure_channel(
        addr, grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
    )
    for channel in (clients.channel(addr, stranger), anonymous, grpc.insecure_channel(addr)):
        with channel, pytest.raises(grpc.RpcError) as raised:
            health(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_and_the_token_together(
    project_server: Callable[[], str], pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch, api_token: str
) -> None:
    for key, name in zip(TLS_KEYS, ("cert", "key", "ca"), strict=True):
        monkeypatch.setenv(key, str(pki[name]))
    addr = project_server()
    tls_only = GrpcSecurity(
        cert=pki["cert"].read_bytes(), key=pki["key"].read_bytes(), ca=pki["ca"].read_bytes()
    )
    with clients.channel(addr, tls_only) as channel:
        refused_as_unrecognized(channel)
    with clients.channel(addr) as channel:  # the environment's: certificate and token
        assert create_project(channel)


def test_a_partial_tls_configuration_fails_at_start(pki: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="all of"):
        GrpcSecurity.from_env({"CUSTOMLABELS_TLS_CERT_FILE": str(pki["cert"])})
    with pytest.raises(ConfigError, match="cannot read"):
        GrpcSecurity.from_env({key: "/nonexistent.pem" for key in TLS_KEYS})


def test_the_cli_sends_the_token_of_stack_env(
    stack: LocalServices,
    api_token: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key in [k for k in os.environ if k.startswith("CUSTOMLABELS_")]:
        monkeypatch.delenv(key)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".data").mkdir()
    monkeypatch.chdir(tmp_path)
    stack_env = tmp_path / ".data" / "stack.env"
    stack_env.write_text(f"CUSTOMLABELS_PROJECT_ADDR={stack.project_addr}\n")
    assert cli_main(["describe-projects", "--max-results", "1"]) == 254
    assert "(UnrecognizedClientException)" in capsys.readouterr().err
    stack_env.write_text(
        f"CUSTOMLABELS_PROJECT_ADDR={stack.project_addr}\nCUSTOMLABELS_API_TOKEN={api_token}\n"
    )
    assert cli_main(["describe-projects", "--max-results", "1"]) == 0
    assert "ProjectDescriptions" in capsys.readouterr().out
