"""`make demo`: the workflow of spec/workflow.md through the `customlabels` CLI on the running stack.

Each step prints the command it runs and the JSON the service returned, so the output doubles as a
tutorial. Today it covers what is built (projects, tags, project policies); each later issue adds
its steps (datasets, training, evaluation, serving).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("customlabels"))


def run(*args: str, expect_error: str | None = None) -> dict[str, Any]:
    """Runs one CLI command, echoes it and its output; returns the parsed JSON (or {} for no output)."""
    print(f"\n$ customlabels {shlex.join(args)}", flush=True)
    proc = subprocess.run([CLI, *args], capture_output=True, text=True, check=False)
    if expect_error is not None:
        if proc.returncode == 0 or expect_error not in proc.stderr:
            raise SystemExit(f"expected {expect_error}, got rc={proc.returncode}: {proc.stdout}{proc.stderr}")
        print(proc.stderr.strip())
        return {}
    if proc.returncode != 0:
        raise SystemExit(f"command failed (rc={proc.returncode}): {proc.stderr.strip()}")
    out = proc.stdout.strip()
    print(out)
    return json.loads(out) if out else {}


def main() -> None:
    """Runs the demo against the stack whose endpoints are in DATA_DIR/stack.env."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=".data")
    args = parser.parse_args()
    stack_env = Path(args.data_dir).resolve() / "stack.env"
    if not stack_env.exists():
        raise SystemExit(f"{stack_env} not found: run `make up` first")
    os.environ["CUSTOMLABELS_STACK_ENV"] = str(stack_env)
    common = ["--stack-env", str(stack_env)]
    name = f"demo-shelves-{time.strftime('%Y%m%d-%H%M%S')}"

    print("== 1. Create a project")
    arn = run(*common, "create-project", "--project-name", name, "--tags", "team=vision", "env=demo")["ProjectArn"]
    run(*common, "describe-projects", "--project-names", name)
    run(*common, "create-project", "--project-name", name, expect_error="ResourceInUseException")

    print("\n== 2. Tags")
    run(*common, "tag-resource", "--resource-arn", arn, "--tags", "owner=alice")
    run(*common, "untag-resource", "--resource-arn", arn, "--tag-keys", "env")
    run(*common, "list-tags-for-resource", "--resource-arn", arn)

    print("\n== 3. A project policy (lets account 111122223333 copy model versions)")
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "Action": "rekognition:CopyProjectVersion",
                    "Resource": "*",
                }
            ],
        }
    )
    revision = run(
        *common, "put-project-policy", "--project-arn", arn, "--policy-name", "share", "--policy-document", policy
    )["PolicyRevisionId"]
    run(*common, "list-project-policies", "--project-arn", arn)
    run(
        *common, "delete-project-policy", "--project-arn", arn, "--policy-name", "share",
        "--policy-revision-id", revision,
    )

    print("\n== 4. Clean up")
    run(*common, "delete-project", "--project-arn", arn)
    run(*common, "describe-projects", "--project-names", name)
    print("\ndemo finished: every step above ran against the real stack (`make status` shows it).")


if __name__ == "__main__":
    main()
