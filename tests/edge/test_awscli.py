"""The AWS CLI (`aws rekognition ... --endpoint-url`), unchanged, against the edge."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.edge.conftest import REGION, EdgeUnderTest

pytestmark = pytest.mark.slow


@pytest.fixture
def aws(edge: EdgeUnderTest, tmp_path: Path) -> Any:
    """`aws(*args)`: runs `aws rekognition ARGS --endpoint-url EDGE` with the edge's key; (code, out, err)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        # Nothing of the developer's own AWS set-up: only these keys and this region.
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": edge.access_key_id,
        "AWS_SECRET_ACCESS_KEY": edge.secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
    }

    def run(*args: str) -> tuple[int, Any, str]:
        result = subprocess.run(
            [sys.executable, "-m", "awscli", "rekognition", *args, "--endpoint-url", edge.endpoint],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = json.loads(result.stdout) if result.stdout.strip() else {}
        return result.returncode, out, result.stderr

    return run


def test_the_aws_cli_manages_a_project_its_tags_and_dataset_entries(aws: Any) -> None:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    code, created, err = aws("create-project", "--project-name", name, "--tags", "team=vision")
    assert code == 0, err
    project = created["ProjectArn"]

    code, described, err = aws("describe-projects", "--project-names", name, "--page-size", "1")
    assert code == 0, err
    assert [(p["ProjectArn"], p["Status"]) for p in described["ProjectDescriptions"]] == [
        (project, "CREATED")
    ]

    code, tags, err = aws("list-tags-for-resource", "--resource-arn", project)
    assert (code, tags) == (0, {"Tags": {"team": "vision"}}), err

    code, dataset, err = aws("create-dataset", "--project-arn", project, "--dataset-type", "TRAIN")
    assert code == 0, err
    line = json.dumps(
        {"source-ref": "s3://bucket/a.jpg", "label": 1, "label-metadata": {"class-name": "cat"}}
    )
    code, _, err = aws(
        "update-dataset-entries",
        "--dataset-arn",
        dataset["DatasetArn"],
        "--changes",
        json.dumps({"GroundTruth": line}),
    )
    # The entry's image does not exist, so the update fails or the entry carries an error; what this
    # checks is that the blob travelled: the dataset saw an update.
    assert code == 0, err
    code, described, err = aws("describe-dataset", "--dataset-arn", dataset["DatasetArn"])
    assert code == 0, err
    assert described["DatasetDescription"]["Status"] in {
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE",
        "UPDATE_FAILED",
    }


def test_the_aws_cli_reports_service_errors_as_for_aws(aws: Any) -> None:
    arn = "arn:aws:rekognition:local:000000000000:project/none/dataset/train/1"
    code, _, err = aws("describe-dataset", "--dataset-arn", arn)
    assert code == 255, err  # AWS CLI v1's status for any failed command (v2 says 254)
    assert "An error occurred (ResourceNotFoundException) when calling the DescribeDataset operation" in err
