"""README's "Switching from AWS": its boto3 script, not a line changed, and the AWS CLI, pointed at the
edge by the standard AWS variables alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.edge.conftest import REGION, EdgeUnderTest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_script() -> str:
    """The Python block of README's "Switching from AWS" section."""
    section = README.read_text().split("## Switching from AWS", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README has no boto3 script under Switching from AWS"
    return match.group(1)


def aws_environment(edge: EdgeUnderTest, home: Path) -> dict[str, str]:
    """What README tells a user to export, and nothing of a developer's own AWS set-up."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_REKOGNITION": edge.endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": edge.access_key_id,
        "AWS_SECRET_ACCESS_KEY": edge.secret_access_key,
    }


def test_the_readme_boto3_script_runs_unchanged_against_the_edge(edge: EdgeUnderTest, tmp_path: Path) -> None:
    script = tmp_path / "my_models.py"
    script.write_text(readme_script())
    env = aws_environment(edge, tmp_path)
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"^arn:aws:rekognition:local:\d{12}:project/shelves/\d+ CREATED$", result.stdout, re.MULTILINE
    )

    cli = subprocess.run(
        [sys.executable, "-m", "awscli", "rekognition", "describe-projects", "--project-names", "shelves"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    # The script deleted its project: gone, or on its way out.
    assert {p["Status"] for p in json.loads(cli.stdout)["ProjectDescriptions"]} <= {"DELETING"}
