"""`make demo`: the workflow of spec/workflow.md through the `customlabels` CLI on the running stack.

Each step prints the command it runs and the JSON the service returned, so the output doubles as a
tutorial: projects, tags, project policies, datasets, training and evaluation, starting the model on
Triton, DetectCustomLabels on new images, stopping it, and cleaning up. Its images are made by
scripts/samples.py (shapes drawn onto scikit-image's photos), so it needs nothing but the stack.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts import samples
from services.common.storage import ObjectStore

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


def read_env(path: Path) -> dict[str, str]:
    """The KEY=value lines of stack.env."""
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            out[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return out


def wait_dataset(common: list[str], dataset_arn: str, timeout: float = 300) -> dict[str, Any]:
    """Polls describe-dataset every second (as the AWS samples do every 5 s) until it settles."""
    deadline = time.monotonic() + timeout
    while True:
        proc = subprocess.run(
            [CLI, *common, "describe-dataset", "--dataset-arn", dataset_arn],
            capture_output=True,
            text=True,
            check=True,
        )
        desc = json.loads(proc.stdout)["DatasetDescription"]
        if not desc["Status"].endswith("IN_PROGRESS"):
            print(f"\n$ customlabels describe-dataset --dataset-arn {dataset_arn}\n{proc.stdout.strip()}")
            if desc["Status"].endswith("FAILED"):
                raise SystemExit(f"dataset failed: {desc['StatusMessage']}")
            return desc
        if time.monotonic() > deadline:
            raise SystemExit(f"dataset still {desc['Status']} after {timeout} s")
        time.sleep(1)


def wait_version(common: list[str], project_arn: str, wanted: str, timeout: float = 300) -> dict[str, Any]:
    """Polls describe-project-versions every second until the version leaves STARTING/STOPPING."""
    deadline = time.monotonic() + timeout
    args = ["describe-project-versions", "--project-arn", project_arn, "--version-names", "v1"]
    while True:
        proc = subprocess.run([CLI, *common, *args], capture_output=True, text=True, check=True)
        version = json.loads(proc.stdout)["ProjectVersionDescriptions"][0]
        if version["Status"] not in ("STARTING", "STOPPING"):
            print(f"\n$ customlabels {shlex.join(args)}\n  Status: {version['Status']}")
            if version["Status"] != wanted:
                raise SystemExit(f"expected {wanted}: {version.get('StatusMessage')}")
            return version
        if time.monotonic() > deadline:
            raise SystemExit(f"version still {version['Status']} after {timeout} s")
        time.sleep(1)


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
    arn = run(*common, "create-project", "--project-name", name, "--tags", "team=vision", "env=demo")[
        "ProjectArn"
    ]
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
        *common,
        "put-project-policy",
        "--project-arn",
        arn,
        "--policy-name",
        "share",
        "--policy-document",
        policy,
    )["PolicyRevisionId"]
    run(*common, "list-project-policies", "--project-arn", arn)
    run(
        *common,
        "delete-project-policy",
        "--project-arn",
        arn,
        "--policy-name",
        "share",
        "--policy-revision-id",
        revision,
    )

    print("\n== 4. A TRAIN dataset from local images (labels = sub-folder names)")
    work = Path(tempfile.mkdtemp(prefix="customlabels-demo-"))
    samples.write_folder(samples.classification(per_label=12, seed=1), work / "train")
    train = run(
        *common, "upload-images", str(work / "train"), "--project-arn", arn, "--dataset-type", "TRAIN"
    )
    train_arn = train["DatasetArn"]
    wait_dataset(common, train_arn)

    print("\n== 5. A TEST dataset from a Ground Truth manifest in the object store")
    env = read_env(stack_env)
    store = ObjectStore(
        env["CUSTOMLABELS_S3_ENDPOINT"], env["CUSTOMLABELS_S3_ACCESS_KEY"], env["CUSTOMLABELS_S3_SECRET_KEY"]
    )
    bucket = "demo-user-bucket"
    store.ensure_bucket(bucket)
    lines = []
    for sample in samples.classification(per_label=4, seed=2):
        key = f"{name}/test/{sample.file_name}"
        store.put_bytes(bucket, key, sample.data, content_type="image/jpeg")
        lines.append(samples.manifest_line(f"s3://{bucket}/{key}", sample))
    store.put_bytes(bucket, f"{name}/test.manifest", ("\n".join(lines) + "\n").encode())
    source = json.dumps(
        {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": f"{name}/test.manifest"}}}
    )
    test_arn = run(
        *common, "create-dataset", "--project-arn", arn, "--dataset-type", "TEST", "--dataset-source", source
    )["DatasetArn"]
    wait_dataset(common, test_arn)
    run(*common, "list-dataset-labels", "--dataset-arn", train_arn)
    run(
        *common,
        "list-dataset-entries",
        "--dataset-arn",
        test_arn,
        "--contains-labels",
        "circle",
        "--max-results",
        "2",
    )

    print("\n== 6. Train a model version (PyTorch on this machine's CPU) and read its evaluation")
    store.ensure_bucket("demo-training-output")
    output = json.dumps({"S3Bucket": "demo-training-output", "S3KeyPrefix": name})
    version_arn = run(
        *common,
        "create-project-version",
        "--project-arn",
        arn,
        "--version-name",
        "v1",
        "--output-config",
        output,
    )["ProjectVersionArn"]
    print(f"\n$ customlabels wait-training --project-arn {arn} --version-name v1")
    proc = subprocess.run(
        [CLI, *common, "wait-training", "--project-arn", arn, "--version-name", "v1"],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"training failed: {proc.stdout}")
    version = json.loads(proc.stdout)
    summary_ref = version["EvaluationResult"]["Summary"]["S3Object"]
    summary = json.loads(store.get_bytes(summary_ref["Bucket"], summary_ref["Name"]))
    print(
        f"\nF1 score {version['EvaluationResult']['F1Score']:.3f}, trained in "
        f"{version['BillableTrainingTimeInSeconds']} s; per label (from {summary_ref['Name']}):"
    )
    for row in summary["LabelEvaluationResults"]:
        m = row["Metrics"]
        print(
            f"  {row['Label']:<10} F1 {m['F1Score']:.3f}  precision {m['Precision']:.3f}  recall {m['Recall']:.3f}"
            f"  assumed threshold {m['Threshold']:.3f}  ({row['NumberOfTestingImages']} test images)"
        )

    print("\n== 7. Start the model (Triton loads it; one inference unit)")
    started = time.monotonic()
    run(*common, "start-project-version", "--project-version-arn", version_arn, "--min-inference-units", "1")
    wait_version(common, arn, "RUNNING")
    print(f"  running after {time.monotonic() - started:.1f} s")

    print("\n== 8. DetectCustomLabels on new images (never seen in training)")
    detect = [*common, "detect-custom-labels", "--project-version-arn", version_arn, "--image-bytes"]
    for sample in samples.classification(per_label=1, seed=99):
        path = work / f"new-{sample.file_name}"
        path.write_bytes(sample.data)
        print(f"\n(image drawn with a {sample.labels[0]})")
        run(*detect, f"fileb://{path}")
    run(*detect, f"fileb://{path}", "--min-confidence", "0", "--max-results", "3")
    print("\n(a file that is not an image is refused with the AWS error)")
    (work / "notes.txt").write_text("not an image")
    run(*detect, f"fileb://{work / 'notes.txt'}", expect_error="InvalidImageFormatException")

    print("\n== 9. Stop the model")
    run(*common, "stop-project-version", "--project-version-arn", version_arn)
    wait_version(common, arn, "STOPPED")
    run(*detect, f"fileb://{path}", expect_error="ResourceNotReadyException")

    print("\n== 10. Clean up (a project with datasets or versions cannot be deleted)")
    run(*common, "delete-project", "--project-arn", arn, expect_error="ResourceInUseException")
    run(*common, "delete-project-version", "--project-version-arn", version_arn)
    run(*common, "delete-dataset", "--dataset-arn", test_arn)
    run(*common, "delete-dataset", "--dataset-arn", train_arn)
    run(*common, "delete-project", "--project-arn", arn)
    run(*common, "describe-projects", "--project-names", name)
    shutil.rmtree(work, ignore_errors=True)
    print("\ndemo finished: every step above ran against the real stack (`make status` shows it).")
    console_intro(env, Path(args.data_dir).resolve())


def console_intro(env: dict[str, str], data_dir: Path) -> None:
    """Prints how to sign in to the web console, with images to drop into it."""
    url = env.get("CUSTOMLABELS_CONSOLE_URL")
    if not url:
        return
    folder = data_dir / "console-samples"
    shutil.rmtree(folder, ignore_errors=True)
    samples.write_folder(samples.classification(per_label=12, seed=7), folder / "train")
    samples.write_folder(samples.classification(per_label=4, seed=8), folder / "test")
    (folder / "boxes").mkdir(parents=True)
    for sample in samples.detection(12, seed=9):
        (folder / "boxes" / sample.file_name).write_bytes(sample.data)
    print(
        "\n== The web console: the same workflow in a browser\n"
        f"  open {url} and sign in with\n"
        f"    access key ID      {env['CUSTOMLABELS_AWS_ACCESS_KEY_ID']}\n"
        f"    secret access key  {env['CUSTOMLABELS_AWS_SECRET_ACCESS_KEY']}\n"
        f"  then create a project and drop {folder / 'train'} (sub-folder = label) into Create dataset;\n"
        f"  {folder / 'boxes'} has unlabeled photos to draw boxes on. (Keys and URL: {data_dir / 'stack.env'})"
    )


if __name__ == "__main__":
    main()
