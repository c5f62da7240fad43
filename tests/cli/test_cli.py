"""The `customlabels` CLI against a real project service (real gRPC, real Postgres) and a recording dataset service."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc

from services.cli import endpoints
from services.cli.__main__ import main
from services.common import db
from services.common.server import create_server
from services.project import app
from tests.conftest import service_config

POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},'
    ' "Action": "rekognition:CopyProjectVersion", "Resource": "*"}]}'
)
DATASET_ARN = "arn:aws:rekognition:local:000000000000:project/p/dataset/train/1690000000000"


class NoPeers:
    """The project service's view of dataset and training when neither has anything."""

    def datasets_of(self, project_arns: list[str]) -> dict[str, list[Any]]:
        return {}

    def has_versions(self, project_arn: str) -> bool:
        return False

    def dataset_exists(self, dataset_arn: str) -> bool:
        return False

    def version_exists(self, project_arn: str, version_arn: str) -> bool:
        return False


class RecordingDatasets(ds_grpc.DatasetServiceServicer):
    """A dataset service that records each request, to check what the CLI's flags turn into."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def CreateDataset(self, request, context):  # noqa: N802
        self.requests.append(request)
        return ds.CreateDatasetResponse(dataset_arn=DATASET_ARN)

    def UpdateDatasetEntries(self, request, context):  # noqa: N802
        self.requests.append(request)
        return ds.UpdateDatasetEntriesResponse()

    def ImportCoco(self, request, context):  # noqa: N802
        self.requests.append(request)
        return ds.ImportCocoResponse(dataset_arn=DATASET_ARN)

    def ExportDatasetEntries(self, request, context):  # noqa: N802
        self.requests.append(request)
        for name in ("a.jpg", "b.jpg"):
            image = common.S3Object(bucket="images", name=name)
            yield ds.ExportDatasetEntriesResponse(
                entries=[ds.ExportedDatasetEntry(dataset_entry="{}", image=image)]
            )


@pytest.fixture(scope="module")
def project_addr(database_url: str) -> Iterator[str]:
    """A project service on a free port, on the module's fresh database."""
    db.migrate(database_url, app.SCHEMA, app.MIGRATIONS)
    pool = db.create_pool(database_url, app.SCHEMA)
    running = app.build_server(service_config("project", database_url), app.Deps(pool=pool, peers=NoPeers()))
    yield f"127.0.0.1:{running.port}"
    running.stop(0)
    pool.close()


@pytest.fixture(scope="module")
def datasets() -> Iterator[tuple[str, RecordingDatasets]]:
    """A recording dataset service on a free port."""
    servicer = RecordingDatasets()
    name = ds.DESCRIPTOR.services_by_name["DatasetService"].full_name
    running = create_server(
        "127.0.0.1:0", [lambda server: ds_grpc.add_DatasetServiceServicer_to_server(servicer, server)], [name]
    )
    yield f"127.0.0.1:{running.port}", servicer
    running.stop(0)


@dataclass
class Result:
    """What one CLI run printed and returned."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        """The stdout parsed as one JSON document."""
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def no_ambient_addresses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keeps the developer's environment and a running stack's stack.env out of the tests."""
    for key in [k for k in os.environ if k.startswith("CUSTOMLABELS_")]:
        monkeypatch.delenv(key)
    (tmp_path / ".git").mkdir()  # the search for .data/stack.env stops at a repository root
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], project_addr: str) -> Any:
    """Runs `main(argv)` in-process against the project service; returns a Result."""

    def run(*argv: str) -> Result:
        code = main(["--project-addr", project_addr, *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def create_project(cli: Any, name: str, *extra: str) -> str:
    result = cli("create-project", "--project-name", name, *extra)
    assert result.code == 0, result.err
    return result.json["ProjectArn"]


# --------------------------------------------------------------------------- project service


def test_create_project_prints_the_project_arn(cli: Any, unique: str) -> None:
    result = cli("create-project", "--project-name", f"shelves-{unique}")
    assert result.code == 0, result.err
    assert list(result.json) == ["ProjectArn"]
    assert re.fullmatch(
        rf"arn:aws:rekognition:[a-z0-9-]+:\d{{12}}:project/shelves-{unique}/\d+", result.json["ProjectArn"]
    )
    assert result.err == ""


def test_describe_projects_prints_the_aws_shape(cli: Any, unique: str) -> None:
    before = time.time()
    arn = create_project(cli, f"described-{unique}")
    result = cli(
        "describe-projects", "--project-names", f"described-{unique}", f"other-{unique}", "--max-results", "5"
    )
    assert result.code == 0, result.err
    assert set(result.json) == {"ProjectDescriptions"}  # no NextToken on the last page
    (project,) = result.json["ProjectDescriptions"]
    assert project["ProjectArn"] == arn
    assert project["Status"] == "CREATED"
    assert project["Datasets"] == []
    assert isinstance(project["CreationTimestamp"], float)
    assert before - 5 < project["CreationTimestamp"] < time.time() + 5
    assert result.out.startswith('{\n    "ProjectDescriptions"')  # pretty, 4 spaces like the AWS CLI


def test_describe_projects_returns_one_page_and_its_next_token(cli: Any, unique: str) -> None:
    names = [f"paged-{unique}-{i}" for i in range(3)]
    arns = [create_project(cli, name) for name in names]
    first = cli("describe-projects", "--project-names", *names, "--max-results", "2")
    assert [p["ProjectArn"] for p in first.json["ProjectDescriptions"]] == arns[:2]
    token = first.json["NextToken"]
    rest = cli("describe-projects", "--project-names", *names, "--max-results", "2", "--next-token", token)
    assert [p["ProjectArn"] for p in rest.json["ProjectDescriptions"]] == arns[2:]
    assert "NextToken" not in rest.json


def test_tags_take_key_value_pairs_or_json(cli: Any, unique: str) -> None:
    arn = create_project(cli, f"tagged-{unique}", "--tags", "team=vision", "env=prod")
    assert cli("list-tags-for-resource", "--resource-arn", arn).json == {
        "Tags": {"team": "vision", "env": "prod"}
    }
    tagged = cli("tag-resource", "--resource-arn", arn, "--tags", '{"owner": "a=b", "env": "dev"}')
    assert (tagged.code, tagged.out) == (0, "")  # an empty response prints nothing, as the AWS CLI does
    assert cli("untag-resource", "--resource-arn", arn, "--tag-keys", "team", "absent").code == 0
    assert cli("list-tags-for-resource", "--resource-arn", arn).json == {
        "Tags": {"env": "dev", "owner": "a=b"}
    }


def test_string_flags_read_file_urls(cli: Any, unique: str, tmp_path: Path) -> None:
    arn = create_project(cli, f"policy-{unique}")
    (tmp_path / "policy.json").write_text(POLICY)
    put = cli(
        "put-project-policy",
        "--project-arn",
        arn,
        "--policy-name",
        "copy",
        "--policy-document",
        "file://policy.json",
    )
    assert put.code == 0, put.err
    (policy,) = cli("list-project-policies", "--project-arn", arn).json["ProjectPolicies"]
    assert policy["PolicyDocument"] == POLICY
    assert policy["PolicyRevisionId"] == put.json["PolicyRevisionId"]
    assert isinstance(policy["LastUpdatedTimestamp"], float)


def test_cli_input_json_gives_the_request_and_flags_override_it(cli: Any, unique: str) -> None:
    request = json.dumps({"ProjectName": "ignored", "Tags": {"from": "json"}})
    arn = create_project(cli, f"input-{unique}", "--cli-input-json", request)
    assert f"/input-{unique}/" in arn
    assert cli("list-tags-for-resource", "--resource-arn", arn).json == {"Tags": {"from": "json"}}


def test_duplicate_project_name_is_resource_in_use_with_status_254(cli: Any, unique: str) -> None:
    create_project(cli, f"twice-{unique}")
    result = cli("create-project", "--project-name", f"twice-{unique}")
    assert result.code == 254
    assert result.out == ""
    assert result.err.startswith(
        "An error occurred (ResourceInUseException) when calling the CreateProject operation: "
    )
    assert result.err.count("\n") == 1


def test_internal_operations_are_hidden_but_callable(cli: Any, unique: str) -> None:
    arn = create_project(cli, f"internal-{unique}")
    result = cli("get-project", "--project-arn", arn)
    assert result.code == 0, result.err
    assert result.json["ProjectName"] == f"internal-{unique}"
    assert result.json["Status"] == "CREATED"


def test_global_flags_may_follow_the_command(cli: Any, unique: str, project_addr: str) -> None:
    result = main(
        [
            "describe-projects",
            "--project-names",
            f"nothing-{unique}",
            "--project-addr",
            project_addr,
            "--timeout",
            "5",
        ]
    )
    assert result == 0


def test_the_installed_entry_point_runs_as_a_process(cli: Any, unique: str, project_addr: str) -> None:
    arn = create_project(cli, f"process-{unique}")
    program = Path(sys.executable).with_name("customlabels")
    env = {**os.environ, "CUSTOMLABELS_PROJECT_ADDR": project_addr}
    done = subprocess.run(
        [str(program), "describe-projects", "--project-names", f"process-{unique}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [p["ProjectArn"] for p in json.loads(done.stdout)["ProjectDescriptions"]] == [arn]
    duplicate = subprocess.run(
        [str(program), "create-project", "--project-name", f"process-{unique}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert duplicate.returncode == 254
    assert "(ResourceInUseException) when calling the CreateProject operation" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr


# --------------------------------------------------------------------------- failures without an answer


def test_an_operation_nobody_serves_is_a_clean_254(cli: Any, project_addr: str) -> None:
    # The project server does not serve DatasetService: gRPC answers UNIMPLEMENTED.
    result = cli("--dataset-addr", project_addr, "describe-dataset", "--dataset-arn", DATASET_ARN)
    assert result.code == 254
    assert result.err.startswith(
        "An error occurred (InternalServerError) when calling the DescribeDataset operation: "
    )
    assert f"DatasetService at {project_addr} answered UNIMPLEMENTED" in result.err
    assert result.err.count("\n") == 1


def test_an_unreachable_service_is_a_clean_255(cli: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    result = cli(
        "--training-addr", closed, "--timeout", "5", "describe-project-versions", "--project-arn", "arn:p"
    )
    assert result.code == 255
    assert result.err.startswith(f"Could not connect to the TrainingService at {closed}")
    assert "Traceback" not in result.err


# --------------------------------------------------------------------------- arguments


def test_bad_enum_value_is_a_usage_error(cli: Any) -> None:
    result = cli("create-dataset", "--project-arn", "arn:p", "--dataset-type", "VALIDATION")
    assert result.code == 2
    assert "argument --dataset-type: invalid choice: 'VALIDATION'" in result.err
    assert "TRAIN" in result.err


def test_bad_json_member_is_a_usage_error_naming_the_member(cli: Any) -> None:
    source = '{"GroundTruthManifest": {"S3Object": {"Bucket": 7}}}'
    result = cli("create-dataset", "--dataset-type", "TRAIN", "--dataset-source", source)
    assert result.code == 2
    assert "DatasetSource.GroundTruthManifest.S3Object.Bucket: expected a string" in result.err
    assert result.err.startswith("usage: customlabels create-dataset")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["create-dataset", "--dataset-source", "{not json"], "--dataset-source: invalid JSON"),
        (["create-dataset", "--tags", "novalue"], "--tags: expected KEY=VALUE, got 'novalue'"),
        (["create-dataset", "--dataset-source", "file://missing.json"], "cannot read file://missing.json"),
        (["describe-projects", "--max-results", "five"], "invalid int value: 'five'"),
        (["describe-projects", "--max-results", "3000000000"], "MaxResults: 3000000000 is out of range"),
        (["nonsense-command"], "invalid choice: 'nonsense-command'"),
        (
            ["upload-images"],
            "the following arguments are required: DIR",
        ),  # streamed uploads have their own command
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_unreadable_arguments_exit_2(cli: Any, argv: list[str], expected: str) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert expected in result.err


def test_help_lists_public_commands_only(cli: Any) -> None:
    result = cli("--help")
    assert result.code == 0
    assert re.search(r"^\s+create-project\s+Creates an empty project\.$", result.out, re.MULTILINE)
    assert "detect-custom-labels" in result.out
    for internal in ("get-project", "set-resource-tags", "export-dataset-entries", "update-version-status"):
        assert not re.search(rf"\b{internal}\b", result.out), internal


def test_command_help_documents_each_flag_from_the_proto_comments(cli: Any) -> None:
    result = cli("create-dataset", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    assert "--dataset-type {TRAIN,TEST}" in text
    assert "--tags KEY=VALUE [KEY=VALUE ...] Holds the tags (0-200) to attach to the dataset." in text
    assert (
        '{"GroundTruthManifest": {"S3Object": {"Bucket": "string", "Name": "string", "Version": "string"}}'
        in text
    )


def test_message_map_and_enum_flags_build_the_request(
    cli: Any, datasets: tuple[str, RecordingDatasets]
) -> None:
    addr, servicer = datasets
    source = '{"GroundTruthManifest": {"S3Object": {"Bucket": "b", "Name": "k"}}}'
    result = cli(
        "--dataset-addr",
        addr,
        "create-dataset",
        "--project-arn",
        "arn:p",
        "--dataset-type",
        "TRAIN",
        "--dataset-source",
        source,
        "--tags",
        "team=vision",
    )
    assert result.json == {"DatasetArn": DATASET_ARN}
    assert servicer.requests[-1] == ds.CreateDatasetRequest(
        project_arn="arn:p",
        dataset_type=ds.DATASET_TYPE_TRAIN,
        dataset_source=ds.DatasetSource(
            ground_truth_manifest=common.GroundTruthManifest(s3_object=common.S3Object(bucket="b", name="k"))
        ),
        tags={"team": "vision"},
    )


def test_blob_flags_take_files_base64_or_raw_text(
    cli: Any, datasets: tuple[str, RecordingDatasets], tmp_path: Path
) -> None:
    addr, servicer = datasets
    (tmp_path / "coco.json").write_bytes(b'{"images": []}\xff')
    target = json.dumps({"DatasetArn": DATASET_ARN})
    assert (
        cli(
            "--dataset-addr", addr, "import-coco", "--target", target, "--coco-json", "fileb://coco.json"
        ).code
        == 0
    )
    assert servicer.requests[-1].coco_json == b'{"images": []}\xff'
    assert servicer.requests[-1].target.dataset_arn == DATASET_ARN

    line = '{"source-ref": "s3://b/a.jpg"}'
    encoded = base64.b64encode(line.encode()).decode()
    assert (
        cli(
            "--dataset-addr",
            addr,
            "update-dataset-entries",
            "--changes",
            json.dumps({"GroundTruth": encoded}),
        ).code
        == 0
    )
    assert servicer.requests[-1].changes.ground_truth == line.encode()
    raw = cli(
        "--dataset-addr",
        addr,
        "--cli-binary-format",
        "raw-in-base64-out",
        "update-dataset-entries",
        "--changes",
        json.dumps({"GroundTruth": line}),
    )
    assert raw.code == 0, raw.err
    assert servicer.requests[-1].changes.ground_truth == line.encode()


def test_two_members_of_a_oneof_are_a_usage_error(cli: Any, datasets: tuple[str, RecordingDatasets]) -> None:
    addr, _ = datasets
    result = cli(
        "--dataset-addr",
        addr,
        "import-coco",
        "--coco-json",
        "e30=",
        "--coco-s3-object",
        '{"Bucket": "b", "Name": "k"}',
    )
    assert result.code == 2
    assert (
        "only one of CocoS3Object and CocoJson" in result.err
        or "only one of CocoJson and CocoS3Object" in result.err
    )


def test_server_streams_print_one_json_object_per_line(
    cli: Any, datasets: tuple[str, RecordingDatasets]
) -> None:
    addr, servicer = datasets
    result = cli(
        "--dataset-addr", addr, "export-dataset-entries", "--dataset-arn", DATASET_ARN, "--include-unlabeled"
    )
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [line["Entries"][0]["Image"]["Name"] for line in lines] == ["a.jpg", "b.jpg"]
    assert servicer.requests[-1] == ds.ExportDatasetEntriesRequest(
        dataset_arn=DATASET_ARN, include_unlabeled=True
    )


# --------------------------------------------------------------------------- addresses


def test_stack_env_gives_the_address_when_no_flag_or_variable_does(
    capsys: pytest.CaptureFixture[str], project_addr: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".data").mkdir()
    (tmp_path / ".data" / "stack.env").write_text(
        f"# written by make up\nexport CUSTOMLABELS_PROJECT_ADDR='{project_addr}'\n"
    )
    nested = tmp_path / "some" / "folder"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert main(["describe-projects", "--max-results", "1"]) == 0
    assert "ProjectDescriptions" in capsys.readouterr().out


def test_explicit_stack_env_that_is_missing_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack-env", "nowhere.env", "describe-projects"]) == 2
    assert "--stack-env: cannot read nowhere.env" in capsys.readouterr().err


def test_addresses_prefer_flag_then_environment_then_stack_env_then_default() -> None:
    env = {"CUSTOMLABELS_PROJECT_ADDR": "env:1"}
    stack = {"CUSTOMLABELS_PROJECT_ADDR": "stack:1", "CUSTOMLABELS_DATASET_ADDR": "stack:2"}
    assert endpoints.resolve("project", "flag:1", env, stack) == "flag:1"
    assert endpoints.resolve("project", None, env, stack) == "env:1"
    assert endpoints.resolve("dataset", None, env, stack) == "stack:2"
    assert endpoints.resolve("serving", None, env, stack) == "127.0.0.1:50054"


def test_stack_env_search_stops_at_the_repository_root(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    repo = outer / "repo"
    (repo / ".git").mkdir(parents=True)
    (outer / ".data").mkdir()
    (outer / ".data" / "stack.env").write_text("CUSTOMLABELS_PROJECT_ADDR=outer:1\n")
    assert endpoints.find_stack_env(repo / "sub") is None
    (repo / ".data").mkdir()
    (repo / ".data" / "stack.env").write_text('CUSTOMLABELS_PROJECT_ADDR="repo:1"  # comment\nBROKEN\n')
    found = endpoints.find_stack_env(repo / "sub")
    assert found == repo / ".data" / "stack.env"
    assert endpoints.read_env_file(found) == {"CUSTOMLABELS_PROJECT_ADDR": "repo:1"}
