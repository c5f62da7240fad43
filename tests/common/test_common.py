"""Unit tests of services/common: ARNs, page tokens, field checks, config, errors."""

from __future__ import annotations

import grpc
import pytest

from services.common import arn as arns
from services.common import errors, validation
from services.common.config import Config, ConfigError
from services.common.pagination import PageTokens, max_results
from services.project import policy


def test_arns_round_trip_and_match_the_service_model_patterns():
    p = arns.project_arn("eu-west-1", "000011112222", "pcb-parts", 1690000000000)
    v = arns.version_arn(
        "eu-west-1", "000011112222", "pcb-parts", "pcb-parts.2023-07-22T10.15.00", 1690020000000
    )
    d = arns.dataset_arn("eu-west-1", "000011112222", "pcb-parts", "train", 1690000500000)
    assert arns.parse(p) == arns.Arn("project", "eu-west-1", "000011112222", "pcb-parts", 1690000000000)
    assert arns.parse(v).version == "pcb-parts.2023-07-22T10.15.00"
    assert arns.parse(d).dataset_type == "train"
    assert arns.parse_project(p).kind == "project"
    with pytest.raises(errors.InvalidParameter):
        arns.parse_project(v)
    with pytest.raises(errors.InvalidParameter):
        arns.parse_dataset(p.replace("project/", "project/a/dataset/valid/"))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "arn:aws:s3:::bucket-name-long-enough",
        "x" * 2049,
        "arn:aws:rekognition:local:12345:project/p/1",
        "arn:aws:rekognition:local:000000000000:project/p q/1",
    ],
)
def test_arn_parse_refuses_what_is_not_ours(bad):
    with pytest.raises(errors.InvalidParameter):
        arns.parse(bad)


def test_page_tokens_detect_tampering_other_filters_and_expiry():
    tokens = PageTokens(b"secret")
    token = tokens.encode("Op", {"a": 1}, [5, "x"])
    assert tokens.decode("Op", {"a": 1}, token) == [5, "x"]
    assert tokens.decode("Op", {"a": 1}, "") is None
    for bad_call in (
        lambda: tokens.decode("Op", {"a": 2}, token),
        lambda: tokens.decode("Other", {"a": 1}, token),
        lambda: PageTokens(b"other").decode("Op", {"a": 1}, token),
        lambda: tokens.decode("Op", {"a": 1}, token[:-2]),
        lambda: tokens.decode("Op", {"a": 1}, "!!!"),
        lambda: PageTokens(b"secret", ttl_s=-1).decode(
            "Op", {"a": 1}, PageTokens(b"secret", -1).encode("Op", {"a": 1}, [1])
        ),
    ):
        with pytest.raises(errors.InvalidPaginationToken):
            bad_call()


def test_max_results_defaults_and_bounds():
    assert max_results(0, False, 100) == 100
    assert max_results(7, True, 100) == 7
    for value in (0, 101, -5):
        with pytest.raises(errors.InvalidParameter):
            max_results(value, True, 100)


def test_tag_rules_follow_the_service_model():
    assert validation.tags({"Team Name": "Vision 2 ü", "a_b.c:d/e=f+g-h@i": ""})
    for bad in ({"aws:x": "1"}, {"AWS:x": "1"}, {"k": "v!"}, {"k#": "v"}):
        with pytest.raises(errors.InvalidParameter):
            validation.tags(bad)


def test_config_fails_fast_on_missing_or_bad_values():
    with pytest.raises(ConfigError):
        Config.from_env("project", {})
    with pytest.raises(ConfigError):
        Config.from_env("project", {"DATABASE_URL": "postgresql://x", "CUSTOMLABELS_ACCOUNT_ID": "12"})
    with pytest.raises(ConfigError):
        Config.from_env("project", {"DATABASE_URL": "postgresql://x", "CUSTOMLABELS_LISTEN_ADDR": "nohost"})
    config = Config.from_env("dataset", {"DATABASE_URL": "postgresql://x"})
    assert config.listen_addr == "127.0.0.1:50052" and config.region == "local"
    assert "secret" not in repr(
        Config.from_env("dataset", {"DATABASE_URL": "postgresql://x", "CUSTOMLABELS_S3_SECRET_KEY": "secret"})
    )


def test_errors_carry_grpc_code_and_aws_name():
    assert errors.NotReady("x").to_status().code == grpc.StatusCode.FAILED_PRECONDITION
    assert errors.BY_AWS_NAME["ResourceNotFoundException"] is errors.NotFound
    assert errors.InvalidPolicyRevisionId.code == grpc.StatusCode.ABORTED


def test_policy_evaluation_honours_principal_action_and_deny():
    doc = policy.check_document(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["111122223333"]},'
        '"Action":"rekognition:Copy*","Resource":"*"},{"Effect":"Deny","Principal":{"AWS":"444455556666"},'
        '"Action":"*"}]}'
    )
    assert policy.allows(doc, "111122223333", "rekognition:CopyProjectVersion")
    assert not policy.allows(doc, "111122223333", "rekognition:DeleteProject")
    assert not policy.allows(doc, "444455556666", "rekognition:CopyProjectVersion")
    assert not policy.allows(doc, "777788889999", "rekognition:CopyProjectVersion")
