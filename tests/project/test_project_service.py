"""The project service over real gRPC and a real Postgres: every operation and error path of spec/api.md."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc
from customlabels.project.v1 import project_service_pb2 as pb
from customlabels.project.v1 import project_service_pb2_grpc as pb_grpc
from customlabels.training.v1 import training_service_pb2 as tr
from customlabels.training.v1 import training_service_pb2_grpc as tr_grpc

from services.common import arn as arns
from services.common import db
from services.common.errors import NotFound
from services.common.pagination import PageTokens
from services.common.server import create_server
from services.project import app
from services.project.peers import GrpcPeers
from tests.conftest import service_config
from tests.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},'
    ' "Action": "rekognition:CopyProjectVersion", "Resource": "*"}]}'
)


@dataclass
class PeerState:
    """What the stand-in dataset and training services report (set by each test)."""

    datasets: dict[str, list[ds.DatasetMetadata]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # version ARN -> project ARN


class DatasetPeer(ds_grpc.DatasetServiceServicer):
    """The two dataset calls the project service makes, answered from PeerState."""

    def __init__(self, state: PeerState) -> None:
        self.state = state

    def ListProjectDatasets(self, request, context):  # noqa: N802
        return ds.ListProjectDatasetsResponse(
            projects=[
                ds.ProjectDatasets(project_arn=a, datasets=self.state.datasets.get(a, []))
                for a in request.project_arns
            ]
        )

    def DescribeDataset(self, request, context):  # noqa: N802
        for metas in self.state.datasets.values():
            if any(m.dataset_arn == request.dataset_arn for m in metas):
                return ds.DescribeDatasetResponse()
        raise NotFound("no such dataset")


class TrainingPeer(tr_grpc.TrainingServiceServicer):
    """The two training calls the project service makes, answered from PeerState."""

    def __init__(self, state: PeerState) -> None:
        self.state = state

    def CountProjectVersions(self, request, context):  # noqa: N802
        count = sum(1 for p in self.state.versions.values() if p == request.project_arn)
        return tr.CountProjectVersionsResponse(version_count=count)

    def GetProjectVersion(self, request, context):  # noqa: N802
        project = self.state.versions.get(request.project_version_arn)
        if project is None:
            raise NotFound("no such version")
        return tr.GetProjectVersionResponse(project_arn=project)


@pytest.fixture(scope="module")
def state() -> PeerState:
    return PeerState()


@pytest.fixture(scope="module")
def stub(database_url: str, state: PeerState) -> Iterator[pb_grpc.ProjectServiceStub]:
    """A project service wired to stand-in peers over real gRPC channels."""
    peer_server = create_server(
        "127.0.0.1:0",
        [
            lambda s: ds_grpc.add_DatasetServiceServicer_to_server(DatasetPeer(state), s),
            lambda s: tr_grpc.add_TrainingServiceServicer_to_server(TrainingPeer(state), s),
        ],
        [],
    )
    peer_addr = f"127.0.0.1:{peer_server.port}"
    db.migrate(database_url, app.SCHEMA, app.MIGRATIONS)
    pool = db.create_pool(database_url, app.SCHEMA)
    peers = GrpcPeers(peer_addr, peer_addr)
    config = service_config("project", database_url)
    running = app.build_server(config, app.Deps(pool=pool, peers=peers))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield pb_grpc.ProjectServiceStub(channel)
    channel.close()
    running.stop(0)
    peers.close()
    pool.close()
    peer_server.stop(0)


def create(stub: pb_grpc.ProjectServiceStub, name: str, **kwargs) -> str:
    return stub.CreateProject(pb.CreateProjectRequest(project_name=name, **kwargs)).project_arn


def describe(stub: pb_grpc.ProjectServiceStub, *names: str) -> list[pb.ProjectDescription]:
    return list(stub.DescribeProjects(pb.DescribeProjectsRequest(project_names=names)).project_descriptions)


# -- CreateProject / DescribeProjects ---------------------------------------------------------------


def test_create_project_returns_an_aws_shaped_arn_and_is_created(stub, unique):
    arn = create(stub, f"shelves-{unique}")
    assert arns.PROJECT_ARN.match(arn)
    assert re.match(rf"^arn:aws:rekognition:local:000000000000:project/shelves-{unique}/\d{{13}}$", arn)
    (project,) = describe(stub, f"shelves-{unique}")
    assert project.project_arn == arn
    assert project.status == pb.PROJECT_STATUS_CREATED
    assert project.feature == common.CUSTOMIZATION_FEATURE_CUSTOM_LABELS
    assert list(project.datasets) == []
    assert project.creation_timestamp.seconds > 1_700_000_000


@pytest.mark.parametrize("name", ["", "x" * 256, "has space", "slash/name", "ünicode", "semi;colon"])
def test_create_project_with_a_bad_name_is_refused(stub, name):
    expect_error(lambda: create(stub, name), INVALID, "InvalidParameterException")


def test_create_project_accepts_the_longest_name(stub, unique):
    name = (unique + "a" * 255)[:255]
    assert create(stub, name).split("/")[1] == name


def test_create_project_with_a_taken_name_is_refused(stub, unique):
    create(stub, f"dup-{unique}")
    expect_error(
        lambda: create(stub, f"dup-{unique}"), grpc.StatusCode.FAILED_PRECONDITION, "ResourceInUseException"
    )
    assert len(describe(stub, f"dup-{unique}")) == 1


def test_concurrent_create_project_with_one_name_has_exactly_one_winner(stub, unique):
    outcomes: list[str] = []
    barrier = threading.Barrier(12)

    def attempt() -> None:
        barrier.wait()
        try:
            create(stub, f"race-{unique}")
            outcomes.append("ok")
        except grpc.RpcError as exc:
            outcomes.append(exc.code().name)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1
    assert outcomes.count("FAILED_PRECONDITION") == 11
    assert len(describe(stub, f"race-{unique}")) == 1


def test_create_project_for_content_moderation_is_refused(stub, unique):
    expect_error(
        lambda: create(stub, f"cm-{unique}", feature=common.CUSTOMIZATION_FEATURE_CONTENT_MODERATION),
        INVALID,
        "InvalidParameterException",
    )


def test_create_project_stores_its_tags(stub, unique):
    arn = create(stub, f"tagged-{unique}", tags={"team": "vision", "env": "prod"})
    assert dict(stub.ListTagsForResource(pb.ListTagsForResourceRequest(resource_arn=arn)).tags) == {
        "team": "vision",
        "env": "prod",
    }


@pytest.mark.parametrize(
    "tags",
    [
        {"aws:reserved": "x"},
        {"k" * 129: "v"},
        {"k": "v" * 257},
        {"": "v"},
        {"bad\x00key": "v"},
        {f"k{i}": "v" for i in range(201)},
    ],
)
def test_create_project_with_bad_tags_is_refused_and_creates_nothing(stub, unique, tags):
    expect_error(lambda: create(stub, f"badtags-{unique}", tags=tags), INVALID, "InvalidParameterException")
    assert describe(stub, f"badtags-{unique}") == []


def test_describe_projects_filters_by_name_and_ignores_unknown_names(stub, unique):
    a, b = create(stub, f"fa-{unique}"), create(stub, f"fb-{unique}")
    got = describe(stub, f"fa-{unique}", f"fb-{unique}", f"nope-{unique}")
    assert [p.project_arn for p in got] == [a, b]  # oldest first
    assert describe(stub, f"nope-{unique}") == []


def test_describe_projects_without_filters_lists_custom_labels_projects(stub, unique):
    arn = create(stub, f"all-{unique}")
    seen, token = [], ""
    while True:
        page = stub.DescribeProjects(pb.DescribeProjectsRequest(next_token=token, max_results=100))
        seen += [p.project_arn for p in page.project_descriptions]
        token = page.next_token
        if not token:
            break
    assert arn in seen
    only_cm = stub.DescribeProjects(
        pb.DescribeProjectsRequest(features=[common.CUSTOMIZATION_FEATURE_CONTENT_MODERATION])
    )
    assert list(only_cm.project_descriptions) == []


def test_describe_projects_pages_through_every_project_once(stub, unique):
    names = [f"page{i}-{unique}" for i in range(5)]
    created = [create(stub, n) for n in names]
    seen, token, pages = [], "", 0
    while True:
        page = stub.DescribeProjects(
            pb.DescribeProjectsRequest(project_names=names, max_results=2, next_token=token)
        )
        pages += 1
        seen += [p.project_arn for p in page.project_descriptions]
        token = page.next_token
        if not token:
            break
    assert seen == created
    assert pages == 3


def test_describe_projects_page_is_stable_when_projects_are_added_between_pages(stub, unique):
    names = [f"stable{i}-{unique}" for i in range(4)]
    created = [create(stub, n) for n in names[:3]]
    first = stub.DescribeProjects(pb.DescribeProjectsRequest(project_names=names, max_results=2))
    created.append(create(stub, names[3]))
    rest = stub.DescribeProjects(
        pb.DescribeProjectsRequest(project_names=names, max_results=2, next_token=first.next_token)
    )
    assert [p.project_arn for p in [*first.project_descriptions, *rest.project_descriptions]] == created


@pytest.mark.parametrize("max_results", [0, 101, -1])
def test_describe_projects_with_max_results_out_of_range_is_refused(stub, max_results):
    expect_error(
        lambda: stub.DescribeProjects(pb.DescribeProjectsRequest(max_results=max_results)),
        INVALID,
        "InvalidParameterException",
    )


def test_describe_projects_with_more_than_ten_names_is_refused(stub):
    names = [f"n{i}" for i in range(11)]
    expect_error(
        lambda: stub.DescribeProjects(pb.DescribeProjectsRequest(project_names=names)),
        INVALID,
        "InvalidParameterException",
    )


def test_describe_projects_with_a_forged_token_is_refused(stub, unique):
    names = [f"tok{i}-{unique}" for i in range(3)]
    for n in names:
        create(stub, n)
    page = stub.DescribeProjects(pb.DescribeProjectsRequest(project_names=names, max_results=1))
    token = page.next_token
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (forged, "not-a-token", "x" * 1025, token + "=="[:0] + "Zm9v"):
        expect_error(
            lambda bad=bad: stub.DescribeProjects(
                pb.DescribeProjectsRequest(project_names=names, max_results=1, next_token=bad)
            ),
            INVALID,
            "InvalidPaginationTokenException",
        )


def test_describe_projects_token_is_bound_to_its_filters(stub, unique):
    names = [f"bind{i}-{unique}" for i in range(3)]
    for n in names:
        create(stub, n)
    page = stub.DescribeProjects(pb.DescribeProjectsRequest(project_names=names, max_results=1))
    expect_error(
        lambda: stub.DescribeProjects(
            pb.DescribeProjectsRequest(project_names=names[:2], max_results=1, next_token=page.next_token)
        ),
        INVALID,
        "InvalidPaginationTokenException",
    )


def test_describe_projects_with_an_expired_token_is_refused(stub, unique, database_url):
    # A token signed with the service's real secret but already past its expiry.
    secret = service_config("project", database_url).page_token_secret
    names = [f"exp-{unique}"]
    stale = PageTokens(secret, ttl_s=-10).encode(
        "DescribeProjects", {"names": names, "features": ["CUSTOM_LABELS"]}, [0, 0]
    )
    fresh = PageTokens(secret).encode(
        "DescribeProjects", {"names": names, "features": ["CUSTOM_LABELS"]}, [0, 0]
    )
    create(stub, names[0])
    assert (
        len(
            stub.DescribeProjects(
                pb.DescribeProjectsRequest(project_names=names, next_token=fresh)
            ).project_descriptions
        )
        == 1
    )
    expect_error(
        lambda: stub.DescribeProjects(pb.DescribeProjectsRequest(project_names=names, next_token=stale)),
        INVALID,
        "InvalidPaginationTokenException",
    )


def test_describe_projects_includes_each_projects_datasets(stub, state, unique):
    arn = create(stub, f"withds-{unique}")
    name = f"withds-{unique}"
    meta = ds.DatasetMetadata(
        dataset_arn=arns.dataset_arn("local", "000000000000", name, "train", 1),
        dataset_type=ds.DATASET_TYPE_TRAIN,
        status=ds.DATASET_STATUS_CREATE_COMPLETE,
    )
    state.datasets[arn] = [meta]
    try:
        (project,) = describe(stub, name)
        assert [d.dataset_arn for d in project.datasets] == [meta.dataset_arn]
        assert project.datasets[0].dataset_type == ds.DATASET_TYPE_TRAIN
    finally:
        del state.datasets[arn]


# -- DeleteProject ----------------------------------------------------------------------------------


def test_delete_project_removes_it(stub, unique):
    arn = create(stub, f"del-{unique}")
    assert stub.DeleteProject(pb.DeleteProjectRequest(project_arn=arn)).status == pb.PROJECT_STATUS_DELETING
    assert describe(stub, f"del-{unique}") == []
    expect_error(
        lambda: stub.DeleteProject(pb.DeleteProjectRequest(project_arn=arn)),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )


def test_delete_project_frees_its_name(stub, unique):
    first = create(stub, f"reuse-{unique}")
    stub.DeleteProject(pb.DeleteProjectRequest(project_arn=first))
    second = create(stub, f"reuse-{unique}")
    assert second != first or describe(stub, f"reuse-{unique}")[0].project_arn == second


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "arn:aws:rekognition:local:000000000000:project/x",
        "not-an-arn-at-all-but-long",
        "arn:aws:rekognition:local:000000000000:project/p/version/v/1",
    ],
)
def test_delete_project_with_a_malformed_arn_is_refused(stub, bad):
    expect_error(
        lambda: stub.DeleteProject(pb.DeleteProjectRequest(project_arn=bad)),
        INVALID,
        "InvalidParameterException",
    )


def test_delete_project_with_an_unknown_arn_is_not_found(stub, unique):
    arn = arns.project_arn("local", "000000000000", f"ghost-{unique}", 1)
    expect_error(
        lambda: stub.DeleteProject(pb.DeleteProjectRequest(project_arn=arn)),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )


def test_delete_project_with_a_dataset_is_refused(stub, state, unique):
    name = f"busy-{unique}"
    arn = create(stub, name)
    state.datasets[arn] = [
        ds.DatasetMetadata(dataset_arn=arns.dataset_arn("local", "000000000000", name, "test", 2))
    ]
    try:
        expect_error(
            lambda: stub.DeleteProject(pb.DeleteProjectRequest(project_arn=arn)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "ResourceInUseException",
        )
        (project,) = describe(stub, name)
        assert project.status == pb.PROJECT_STATUS_CREATED
    finally:
        del state.datasets[arn]
    stub.DeleteProject(pb.DeleteProjectRequest(project_arn=arn))
    assert describe(stub, name) == []


def test_delete_project_with_a_model_version_is_refused(stub, state, unique):
    name = f"hasver-{unique}"
    arn = create(stub, name)
    version = arns.version_arn("local", "000000000000", name, "v1", 3)
    state.versions[version] = arn
    try:
        expect_error(
            lambda: stub.DeleteProject(pb.DeleteProjectRequest(project_arn=arn)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "ResourceInUseException",
        )
        assert describe(stub, name)[0].status == pb.PROJECT_STATUS_CREATED
    finally:
        del state.versions[version]


def test_delete_project_also_deletes_its_policies_and_tags(stub, unique):
    name = f"cleanup-{unique}"
    arn = create(stub, name, tags={"a": "b"})
    stub.PutProjectPolicy(
        pb.PutProjectPolicyRequest(project_arn=arn, policy_name="p", policy_document=POLICY)
    )
    stub.DeleteProject(pb.DeleteProjectRequest(project_arn=arn))
    again = create(stub, name)
    assert (
        list(stub.ListProjectPolicies(pb.ListProjectPoliciesRequest(project_arn=again)).project_policies)
        == []
    )
    assert dict(stub.ListTagsForResource(pb.ListTagsForResourceRequest(resource_arn=again)).tags) == {}


# -- Tags -------------------------------------------------------------------------------------------


def test_tag_resource_adds_overwrites_and_untags(stub, unique):
    arn = create(stub, f"tags-{unique}", tags={"a": "1"})
    stub.TagResource(pb.TagResourceRequest(resource_arn=arn, tags={"a": "2", "b": "", "ключ": "значение"}))
    assert dict(stub.ListTagsForResource(pb.ListTagsForResourceRequest(resource_arn=arn)).tags) == {
        "a": "2",
        "b": "",
        "ключ": "значение",
    }
    stub.UntagResource(pb.UntagResourceRequest(resource_arn=arn, tag_keys=["a", "missing"]))
    assert dict(stub.ListTagsForResource(pb.ListTagsForResourceRequest(resource_arn=arn)).tags) == {
        "b": "",
        "ключ": "значение",
    }


def test_tag_resource_past_200_tags_is_refused_and_changes_nothing(stub, unique):
    arn = create(stub, f"many-{unique}", tags={f"k{i}": "v" for i in range(150)})
    expect_error(
        lambda: stub.TagResource(
            pb.TagResourceRequest(resource_arn=arn, tags={f"n{i}": "v" for i in range(51)})
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "ServiceQuotaExceededException",
    )
    assert len(stub.ListTagsForResource(pb.ListTagsForResourceRequest(resource_arn=arn)).tags) == 150
    # Overwriting existing keys does not count twice: 150 + 50 new = 200 exactly.
    stub.TagResource(
        pb.TagResourceRequest(
            resource_arn=arn, tags={**{f"k{i}": "w" for i in range(150)}, **{f"n{i}": "v" for i in range(50)}}
        )
    )
    assert len(stub.ListTagsForResource(pb.ListTagsForResourceRequest(resource_arn=arn)).tags) == 200


@pytest.mark.parametrize("keys", [["aws:x"], ["k" * 129], [""], [f"k{i}" for i in range(201)]])
def test_untag_resource_with_bad_keys_is_refused(stub, unique, keys):
    arn = create(stub, f"untag-{unique}")
    expect_error(
        lambda: stub.UntagResource(pb.UntagResourceRequest(resource_arn=arn, tag_keys=keys)),
        INVALID,
        "InvalidParameterException",
    )


def test_tagging_an_unknown_resource_is_not_found(stub, unique):
    for arn in (
        arns.project_arn("local", "000000000000", f"ghost-{unique}", 1),
        arns.dataset_arn("local", "000000000000", f"ghost-{unique}", "train", 1),
        "arn:aws:s3:::some-bucket-name-here",
    ):
        expect_error(
            lambda arn=arn: stub.TagResource(pb.TagResourceRequest(resource_arn=arn, tags={"a": "b"})),
            grpc.StatusCode.NOT_FOUND,
            "ResourceNotFoundException",
        )
        expect_error(
            lambda arn=arn: stub.ListTagsForResource(pb.ListTagsForResourceRequest(resource_arn=arn)),
            grpc.StatusCode.NOT_FOUND,
            "ResourceNotFoundException",
        )


def test_tagging_a_project_arn_of_a_deleted_project_with_the_same_name_is_not_found(stub, unique):
    old = create(stub, f"gen-{unique}")
    stub.DeleteProject(pb.DeleteProjectRequest(project_arn=old))
    new = create(stub, f"gen-{unique}")
    if new != old:
        expect_error(
            lambda: stub.TagResource(pb.TagResourceRequest(resource_arn=old, tags={"a": "b"})),
            grpc.StatusCode.NOT_FOUND,
            "ResourceNotFoundException",
        )


@pytest.mark.parametrize("arn", ["", "short", "x" * 2049])
def test_tagging_with_an_arn_of_bad_length_is_refused(stub, arn):
    expect_error(
        lambda: stub.ListTagsForResource(pb.ListTagsForResourceRequest(resource_arn=arn)),
        INVALID,
        "InvalidParameterException",
    )


def test_datasets_and_versions_can_be_tagged(stub, state, unique):
    name = f"children-{unique}"
    project = create(stub, name)
    dataset = arns.dataset_arn("local", "000000000000", name, "train", 5)
    version = arns.version_arn("local", "000000000000", name, "v1", 6)
    state.datasets[project] = [ds.DatasetMetadata(dataset_arn=dataset)]
    state.versions[version] = project
    try:
        for arn in (dataset, version):
            stub.TagResource(pb.TagResourceRequest(resource_arn=arn, tags={"kind": arn.split("/")[2]}))
            assert dict(stub.ListTagsForResource(pb.ListTagsForResourceRequest(resource_arn=arn)).tags) == {
                "kind": arn.split("/")[2]
            }
        other_version = arns.version_arn("local", "000000000000", name, "v2", 7)
        expect_error(
            lambda: stub.TagResource(pb.TagResourceRequest(resource_arn=other_version, tags={"a": "b"})),
            grpc.StatusCode.NOT_FOUND,
            "ResourceNotFoundException",
        )
    finally:
        del state.datasets[project]
        del state.versions[version]


def test_set_and_delete_resource_tags_replace_the_whole_set(stub, unique):
    arn = arns.dataset_arn("local", "000000000000", f"internal-{unique}", "train", 8)
    stub.SetResourceTags(pb.SetResourceTagsRequest(resource_arn=arn, tags={"a": "1", "b": "2"}))
    stub.SetResourceTags(pb.SetResourceTagsRequest(resource_arn=arn, tags={"c": "3"}))
    stub.DeleteResourceTags(pb.DeleteResourceTagsRequest(resource_arn=arn))
    expect_error(
        lambda: stub.SetResourceTags(pb.SetResourceTagsRequest(resource_arn=arn, tags={"aws:x": "1"})),
        INVALID,
        "InvalidParameterException",
    )


# -- Project policies ---------------------------------------------------------------------------------


def put(stub, arn: str, name: str, document: str = POLICY, revision: str = "") -> str:
    return stub.PutProjectPolicy(
        pb.PutProjectPolicyRequest(
            project_arn=arn, policy_name=name, policy_document=document, policy_revision_id=revision
        )
    ).policy_revision_id


def test_put_project_policy_creates_and_updates_by_revision(stub, unique):
    arn = create(stub, f"pol-{unique}")
    first = put(stub, arn, "share")
    assert re.fullmatch(r"[0-9a-f]{1,64}", first)
    expect_error(
        lambda: put(stub, arn, "share"), grpc.StatusCode.ALREADY_EXISTS, "ResourceAlreadyExistsException"
    )
    expect_error(
        lambda: put(stub, arn, "share", revision="abc123"),
        grpc.StatusCode.ABORTED,
        "InvalidPolicyRevisionIdException",
    )
    second = put(stub, arn, "share", POLICY.replace("Allow", "Deny"), revision=first)
    assert second != first
    (policy,) = stub.ListProjectPolicies(pb.ListProjectPoliciesRequest(project_arn=arn)).project_policies
    assert policy.policy_revision_id == second
    assert '"Deny"' in policy.policy_document
    assert policy.project_arn == arn
    assert policy.last_updated_timestamp.ToDatetime() >= policy.creation_timestamp.ToDatetime()
    # The old revision is gone for good.
    expect_error(
        lambda: put(stub, arn, "share", revision=first),
        grpc.StatusCode.ABORTED,
        "InvalidPolicyRevisionIdException",
    )


def test_put_project_policy_with_a_revision_for_a_new_policy_is_refused(stub, unique):
    arn = create(stub, f"polnew-{unique}")
    expect_error(
        lambda: put(stub, arn, "fresh", revision="0f"),
        grpc.StatusCode.ABORTED,
        "InvalidPolicyRevisionIdException",
    )


@pytest.mark.parametrize(
    "document",
    [
        "{not json",
        "[]",
        '"a string"',
        '{"Version": "2012-10-17"}',
        '{"Version": "1999-01-01", "Statement": []}',
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "*"}]}',
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}',
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": 5}]}',
        '{"Version": "2012-10-17", "Bogus": 1, "Statement": {"Effect": "Allow", "Principal": "*", "Action": "*"}}',
    ],
)
def test_put_project_policy_with_a_malformed_document_is_refused(stub, unique, document):
    arn = create(stub, f"malformed-{unique}")
    expect_error(lambda: put(stub, arn, "p", document), INVALID, "MalformedPolicyDocumentException")
    assert (
        list(stub.ListProjectPolicies(pb.ListProjectPoliciesRequest(project_arn=arn)).project_policies) == []
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("policy_document", POLICY.replace("*", "\u0100")),
        ("policy_document", " " * 2001),
        ("policy_document", ""),
        ("policy_name", "bad name"),
        ("policy_name", "p" * 129),
        ("policy_revision_id", "xyz"),
        ("policy_revision_id", "a" * 65),
    ],
)
def test_put_project_policy_with_a_bad_field_is_refused(stub, unique, field, value):
    arn = create(stub, f"badpol-{unique}")
    request = pb.PutProjectPolicyRequest(project_arn=arn, policy_name="p", policy_document=POLICY)
    setattr(request, field, value)
    expect_error(lambda: stub.PutProjectPolicy(request), INVALID, "InvalidParameterException")


def test_put_project_policy_on_an_unknown_project_is_not_found(stub, unique):
    arn = arns.project_arn("local", "000000000000", f"ghost-{unique}", 1)
    expect_error(lambda: put(stub, arn, "p"), grpc.StatusCode.NOT_FOUND, "ResourceNotFoundException")


def test_project_policies_are_limited_per_project(stub, unique):
    arn = create(stub, f"limit-{unique}")
    for i in range(5):
        put(stub, arn, f"p{i}")
    expect_error(lambda: put(stub, arn, "p5"), grpc.StatusCode.RESOURCE_EXHAUSTED, "LimitExceededException")


def test_list_project_policies_pages_by_name(stub, unique):
    arn = create(stub, f"listpol-{unique}")
    for name in ("c", "a", "b"):
        put(stub, arn, name)
    names, token = [], ""
    while True:
        page = stub.ListProjectPolicies(
            pb.ListProjectPoliciesRequest(project_arn=arn, max_results=2, next_token=token)
        )
        names += [p.policy_name for p in page.project_policies]
        token = page.next_token
        if not token:
            break
    assert names == ["a", "b", "c"]
    for bad in (0, 6):
        expect_error(
            lambda bad=bad: stub.ListProjectPolicies(
                pb.ListProjectPoliciesRequest(project_arn=arn, max_results=bad)
            ),
            INVALID,
            "InvalidParameterException",
        )
    expect_error(
        lambda: stub.ListProjectPolicies(pb.ListProjectPoliciesRequest(project_arn=arn, next_token="junk")),
        INVALID,
        "InvalidPaginationTokenException",
    )


def test_delete_project_policy_checks_revision_and_existence(stub, unique):
    arn = create(stub, f"delpol-{unique}")
    revision = put(stub, arn, "p")
    expect_error(
        lambda: stub.DeleteProjectPolicy(
            pb.DeleteProjectPolicyRequest(project_arn=arn, policy_name="p", policy_revision_id="0123")
        ),
        grpc.StatusCode.ABORTED,
        "InvalidPolicyRevisionIdException",
    )
    stub.DeleteProjectPolicy(
        pb.DeleteProjectPolicyRequest(project_arn=arn, policy_name="p", policy_revision_id=revision)
    )
    expect_error(
        lambda: stub.DeleteProjectPolicy(pb.DeleteProjectPolicyRequest(project_arn=arn, policy_name="p")),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )
    put(stub, arn, "q")
    stub.DeleteProjectPolicy(
        pb.DeleteProjectPolicyRequest(project_arn=arn, policy_name="q")
    )  # no revision: any


# -- Internal calls -----------------------------------------------------------------------------------


def test_get_project_returns_the_project_or_not_found(stub, unique):
    arn = create(stub, f"get-{unique}")
    got = stub.GetProject(pb.GetProjectRequest(project_arn=arn))
    assert (got.project_arn, got.project_name, got.status) == (
        arn,
        f"get-{unique}",
        pb.PROJECT_STATUS_CREATED,
    )
    expect_error(
        lambda: stub.GetProject(pb.GetProjectRequest(project_arn=arn + "1")),
        grpc.StatusCode.NOT_FOUND,
        "ResourceNotFoundException",
    )


def test_copy_is_authorized_within_the_account_and_by_policy_across_accounts(stub, unique):
    source = create(stub, f"src-{unique}")
    version = arns.version_arn("local", "000000000000", f"src-{unique}", "v1", 1)
    same = arns.project_arn("local", "000000000000", f"dst-{unique}", 2)
    other = arns.project_arn("local", "111122223333", f"dst-{unique}", 2)
    stranger = arns.project_arn("local", "444455556666", f"dst-{unique}", 2)

    def ask(destination: str) -> pb.AuthorizeCopyProjectVersionResponse:
        return stub.AuthorizeCopyProjectVersion(
            pb.AuthorizeCopyProjectVersionRequest(
                source_project_arn=source,
                source_project_version_arn=version,
                destination_project_arn=destination,
            )
        )

    assert ask(same).allowed
    assert not ask(other).allowed
    put(stub, source, "share-with-111")
    granted = ask(other)
    assert granted.allowed and granted.policy_name == "share-with-111"
    assert not ask(stranger).allowed
