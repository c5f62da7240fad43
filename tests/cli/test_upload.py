"""`customlabels upload-images`: the request stream, file selection, progress, and the whole command.

The dataset service's UploadImages is not written yet, so the command runs against a test double
of the server side only: a DatasetService servicer behind `create_server` and a real gRPC channel,
which reassembles the stream the way the service must and answers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from customlabels.dataset.v1 import dataset_service_pb2 as ds
from customlabels.dataset.v1 import dataset_service_pb2_grpc as ds_grpc

from services.cli import upload
from services.cli.__main__ import main
from services.cli.upload import CHUNK_BYTES, ImageFile, Progress, select_files, upload_requests
from services.common import errors
from services.common.server import create_server

MiB = 1024 * 1024
DATASET_ARN = "arn:aws:rekognition:local:000000000000:project/p/dataset/train/1690000000000"
MISSING_ARN = "arn:aws:rekognition:local:000000000000:project/p/dataset/train/404"
PROJECT_ARN = "arn:aws:rekognition:local:000000000000:project/p/1690000000000"


# --------------------------------------------------------------------------- the server-side double


@dataclass
class Received:
    """One image as the double reassembled it."""

    file_name: str
    labels: list[str]
    size_bytes: int | None
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Upload:
    """One UploadImages call as the double saw it."""

    target: ds.ImportTarget
    images: list[Received]
    chunk_sizes: list[int]


class UploadDouble(ds_grpc.DatasetServiceServicer):
    """Reassembles UploadImages streams; rejects images whose name starts with "bad"."""

    def __init__(self) -> None:
        self.uploads: list[Upload] = []

    def UploadImages(self, request_iterator, context):  # noqa: N802
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise errors.InvalidParameter("the first message of the stream must be the header")
        target = first.header.target
        if target.dataset_arn == MISSING_ARN:
            raise errors.NotFound(f"The dataset {MISSING_ARN} does not exist")
        images: list[Received] = []
        chunk_sizes: list[int] = []
        for request in request_iterator:
            kind = request.WhichOneof("payload")
            if kind == "header":
                raise errors.InvalidParameter("the header must come once, first")
            if kind == "image":
                size = request.image.size_bytes if request.image.HasField("size_bytes") else None
                images.append(Received(request.image.file_name, list(request.image.labels), size))
            else:
                if not images:
                    raise errors.InvalidParameter("a chunk before any image")
                if len(request.chunk) > CHUNK_BYTES:
                    raise errors.InvalidParameter("a chunk over 1 MiB")
                chunk_sizes.append(len(request.chunk))
                images[-1].data += request.chunk
        self.uploads.append(Upload(target, images, chunk_sizes))
        if target.HasField("new_dataset"):
            kind = ds.DatasetType.Name(target.new_dataset.dataset_type).removeprefix("DATASET_TYPE_").lower()
            arn = f"{target.new_dataset.project_arn}/dataset/{kind}/1700000000000"
        else:
            arn = target.dataset_arn
        outcomes = []
        for image in images:
            if Path(image.file_name).name.startswith("bad"):
                outcomes.append(
                    ds.UploadedImage(
                        file_name=image.file_name,
                        error_code="InvalidImageFormatException",
                        error_message="The image is not a PNG or JPEG.",
                    )
                )
            else:
                digest = hashlib.sha256(image.data).hexdigest()
                outcomes.append(
                    ds.UploadedImage(file_name=image.file_name, source_ref=f"s3://system/{digest}")
                )
        return ds.UploadImagesResponse(dataset_arn=arn, images=outcomes)


@pytest.fixture(scope="module")
def double() -> Iterator[tuple[str, UploadDouble]]:
    servicer = UploadDouble()
    name = ds.DESCRIPTOR.services_by_name["DatasetService"].full_name
    running = create_server(
        "127.0.0.1:0", [lambda server: ds_grpc.add_DatasetServiceServicer_to_server(servicer, server)], [name]
    )
    yield f"127.0.0.1:{running.port}", servicer
    running.stop(0)


@pytest.fixture(autouse=True)
def no_ambient_addresses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keeps the developer's environment and a running stack's stack.env out of the tests."""
    for key in [k for k in os.environ if k.startswith("CUSTOMLABELS_")]:
        monkeypatch.delenv(key)
    (tmp_path / ".git").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- image folders


def write(path: Path, size: int) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A folder of images in sub-folders, plus files that must not be sent; returns the expected bytes."""
    root = tmp_path / "photos"
    expected = {
        "top.jpg": write(root / "top.jpg", 10),
        "cats/a.JPG": write(root / "cats" / "a.JPG", MiB),
        "cats/deep/b.png": write(root / "cats" / "deep" / "b.png", MiB + 1),
        "dogs/c.jpeg": write(root / "dogs" / "c.jpeg", 2 * MiB + MiB // 2),
        "dogs/empty.png": write(root / "dogs" / "empty.png", 0),
    }
    write(root / "dogs" / "notes.txt", 5)
    write(root / "dogs" / "c.jpeg.bak", 5)
    write(root / "dogs" / ".hidden.png", 5)
    write(root / ".cache" / "x.jpg", 5)
    write(root / ".DS_Store", 5)
    (root / "loop").symlink_to(root)  # a link to a folder is not followed
    return root, expected


def test_select_files_takes_images_sorted_and_labels_them_by_folder(
    photos: tuple[Path, dict[str, bytes]],
) -> None:
    root, expected = photos
    files = select_files(root)
    assert [(f.file_name, f.labels, f.size) for f in files] == [
        ("cats/a.JPG", ("cats",), MiB),
        ("cats/deep/b.png", ("cats",), MiB + 1),
        ("dogs/c.jpeg", ("dogs",), len(expected["dogs/c.jpeg"])),
        ("dogs/empty.png", ("dogs",), 0),
        ("top.jpg", (), 10),
    ]
    assert all(f.path == root / f.file_name for f in files)


def test_select_files_without_folder_labels_or_with_forced_labels(
    photos: tuple[Path, dict[str, bytes]],
) -> None:
    root, _ = photos
    assert {f.labels for f in select_files(root, label_by_folder=False)} == {()}
    forced = select_files(root, label_by_folder=True, labels=["x", "y", "x"])
    assert {f.labels for f in forced} == {("x", "y")}
    assert len(forced) == 5


def test_a_folder_name_of_255_characters_is_a_label(tmp_path: Path) -> None:
    name = "x" * 255
    write(tmp_path / name / "a.jpg", 3)
    (only,) = select_files(tmp_path)
    assert only.labels == (name,)


def test_select_files_reports_names_that_are_not_utf8(tmp_path: Path) -> None:
    # Linux file systems (CI's included) take any bytes but / and NUL in a name.
    (tmp_path / os.fsdecode(b"bad\xff.jpg")).write_bytes(b"x")
    write(tmp_path / "good.jpg", 3)
    skipped: list[tuple[str, str]] = []
    files = select_files(tmp_path, on_skip=lambda name, why: skipped.append((name, why)))
    assert [f.file_name for f in files] == ["good.jpg"]
    assert len(skipped) == 1 and "not valid UTF-8" in skipped[0][1]


# --------------------------------------------------------------------------- the request stream


def reassemble(requests: list[ds.UploadImagesRequest]) -> tuple[ds.ImportTarget, list[Received], list[int]]:
    """Splits a stream back into its target, images and chunk sizes, checking its shape."""
    assert requests[0].WhichOneof("payload") == "header"
    images: list[Received] = []
    sizes: list[int] = []
    for request in requests[1:]:
        kind = request.WhichOneof("payload")
        assert kind in ("image", "chunk")
        if kind == "image":
            size = request.image.size_bytes if request.image.HasField("size_bytes") else None
            images.append(Received(request.image.file_name, list(request.image.labels), size))
        else:
            assert images, "a chunk before the first image header"
            assert 0 < len(request.chunk) <= CHUNK_BYTES
            sizes.append(len(request.chunk))
            images[-1].data += request.chunk
    return requests[0].header.target, images, sizes


def test_upload_requests_stream_header_then_images_in_chunks(photos: tuple[Path, dict[str, bytes]]) -> None:
    root, expected = photos
    target = ds.ImportTarget(dataset_arn=DATASET_ARN)
    progress: list[tuple[int, int]] = []
    requests = list(upload_requests(target, select_files(root), lambda i, b: progress.append((i, b))))

    got_target, images, sizes = reassemble(requests)
    assert got_target == target
    assert [(i.file_name, i.labels, i.size_bytes) for i in images] == [
        ("cats/a.JPG", ["cats"], MiB),
        ("cats/deep/b.png", ["cats"], MiB + 1),
        ("dogs/c.jpeg", ["dogs"], len(expected["dogs/c.jpeg"])),
        ("dogs/empty.png", ["dogs"], 0),
        ("top.jpg", [], 10),
    ]
    for image in images:
        assert bytes(image.data) == expected[image.file_name], image.file_name
    # 1 MiB: one chunk; 1 MiB + 1: two; 2.5 MiB: three; empty: none; 10 bytes: one
    assert sizes == [MiB, MiB, 1, MiB, MiB, MiB // 2, 10]
    total = sum(map(len, expected.values()))
    assert progress == sorted(progress)  # cumulative
    assert progress[-1] == (5, total)
    assert (1, MiB) in progress and (4, total - 10) in progress


def test_upload_requests_smaller_chunks(photos: tuple[Path, dict[str, bytes]]) -> None:
    root, expected = photos
    files = [f for f in select_files(root) if f.file_name == "cats/deep/b.png"]
    _, (image,), sizes = reassemble(list(upload_requests(ds.ImportTarget(), files, chunk_bytes=300_000)))
    assert bytes(image.data) == expected["cats/deep/b.png"]
    assert sizes == [300_000] * 3 + [MiB + 1 - 900_000]
    for bad in (0, CHUNK_BYTES + 1):
        with pytest.raises(ValueError, match="chunk_bytes"):
            next(upload_requests(ds.ImportTarget(), files, chunk_bytes=bad))


def test_upload_requests_is_lazy_and_reads_a_file_only_when_its_turn_comes(tmp_path: Path) -> None:
    later = tmp_path / "later.jpg"
    files = [ImageFile(later, "later.jpg", ("x",), 3)]
    stream = upload_requests(ds.ImportTarget(dataset_arn=DATASET_ARN), files)
    assert next(stream).WhichOneof("payload") == "header"
    later.write_bytes(b"abcdef")  # written after the stream started: what is sent is what is read then
    rest = list(stream)
    assert rest[0].image == ds.UploadImageHeader(file_name="later.jpg", labels=["x"], size_bytes=6)
    assert [r.chunk for r in rest[1:]] == [b"abcdef"]


def test_upload_requests_leave_out_files_that_vanished(tmp_path: Path) -> None:
    write(tmp_path / "a.jpg", 4)
    write(tmp_path / "b.jpg", 4)
    files = select_files(tmp_path)
    (tmp_path / "a.jpg").unlink()
    skipped: list[tuple[str, str]] = []
    progress: list[tuple[int, int]] = []
    requests = list(
        upload_requests(
            ds.ImportTarget(),
            files,
            lambda i, b: progress.append((i, b)),
            on_skip=lambda n, w: skipped.append((n, w)),
        )
    )
    _, images, _ = reassemble(requests)
    assert [i.file_name for i in images] == ["b.jpg"]
    assert skipped == [("a.jpg", "cannot open: No such file or directory")]
    assert progress[-1] == (1, 4)


def test_thousands_of_images_stream_with_bounded_messages(tmp_path: Path) -> None:
    for i in range(2000):
        (tmp_path / f"{i % 7}").mkdir(exist_ok=True)
        (tmp_path / f"{i % 7}" / f"{i:05d}.png").write_bytes(i.to_bytes(4, "big"))
    count = 0
    for request in upload_requests(ds.ImportTarget(), select_files(tmp_path)):
        assert request.ByteSize() <= CHUNK_BYTES + 64
        count += 1
    assert count == 1 + 2000 * 2


# --------------------------------------------------------------------------- progress display


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_on_a_terminal_redraws_one_line() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(4, 4_000_000, out, tty=True, clock=clock, width=10)
    progress.start("somewhere")  # the bar speaks for itself
    assert out.getvalue() == ""
    clock.now += 2
    progress.update(1, 1_000_000)
    progress.update(1, 1_500_000)  # too soon after the last drawing: not drawn
    assert out.getvalue() == "\r[##--------] 1/4 images  1.0/4.0 MB  0.5 MB/s  ETA 0:00:06\x1b[K"
    clock.now += 2
    progress.update(4, 4_000_000)
    progress.finish()
    text = out.getvalue()
    assert text.count("\r") == 3
    assert text.endswith("\r[##########] 4/4 images  4.0/4.0 MB  1.0 MB/s  done in 0:00:04\x1b[K\n")


def test_progress_without_a_terminal_prints_plain_lines_now_and_then() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(3, 3_000_000, out, tty=False, clock=clock)
    progress.start("the DatasetService at x:1")
    progress.update(1, 1_000_000)  # within the first interval: nothing yet
    clock.now += upload.PLAIN_INTERVAL_S
    progress.update(2, 2_000_000)
    clock.now += 1
    progress.update(2, 2_500_000)  # too soon
    clock.now += 1
    progress.update(3, 3_000_000)
    progress.finish()
    assert out.getvalue().splitlines() == [
        "uploading 3 images (3.0 MB) to the DatasetService at x:1",
        "uploaded 2/3 images  2.0/3.0 MB  0.4 MB/s  ETA 0:00:03",
        "uploaded 3/3 images  3.0/3.0 MB  0.4 MB/s  done in 0:00:07",
    ]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_progress_quiet_prints_nothing() -> None:
    out = io.StringIO()
    progress = Progress(1, 10, out, quiet=True, tty=True)
    progress.start("x")
    progress.update(1, 10)
    progress.finish()
    assert out.getvalue() == ""


def test_progress_of_empty_files_counts_images() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(2, 0, out, tty=True, clock=clock, width=4)
    progress.update(1, 0)
    assert out.getvalue() == "\r[##--] 1/2 images  0.0/0.0 MB  0.0 MB/s  ETA --:--:--\x1b[K"
    clock.now += 1
    progress.update(2, 0)
    progress.finish()
    assert out.getvalue().endswith("\r[####] 2/2 images  0.0/0.0 MB  0.0 MB/s  done in 0:00:01\x1b[K\n")


# --------------------------------------------------------------------------- the command


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], double: tuple[str, UploadDouble]) -> Any:
    addr, _ = double

    def run(*argv: str) -> Result:
        code = main(["--dataset-addr", addr, *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def clean(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "clean"
    expected = {
        "apple/1.jpg": write(root / "apple" / "1.jpg", 3 * MiB // 2),
        "apple/2.png": write(root / "apple" / "2.png", 1000),
        "pear/x/3.jpeg": write(root / "pear" / "x" / "3.jpeg", 20),
        "loose.PNG": write(root / "loose.PNG", 30),
    }
    return root, expected


def test_upload_images_into_a_new_dataset(
    cli: Any, double: tuple[str, UploadDouble], clean: tuple[Path, dict[str, bytes]]
) -> None:
    root, expected = clean
    _, servicer = double
    result = cli(
        "upload-images",
        str(root),
        "--project-arn",
        PROJECT_ARN,
        "--dataset-type",
        "TRAIN",
        "--tags",
        "team=vision",
    )
    assert result.code == 0, result.err
    upload_seen = servicer.uploads[-1]
    assert upload_seen.target == ds.ImportTarget(
        new_dataset=ds.NewDataset(
            project_arn=PROJECT_ARN, dataset_type=ds.DATASET_TYPE_TRAIN, tags={"team": "vision"}
        )
    )
    assert [(i.file_name, i.labels) for i in upload_seen.images] == [
        ("apple/1.jpg", ["apple"]),
        ("apple/2.png", ["apple"]),
        ("loose.PNG", []),
        ("pear/x/3.jpeg", ["pear"]),
    ]
    assert {i.file_name: bytes(i.data) for i in upload_seen.images} == expected
    assert max(upload_seen.chunk_sizes) <= CHUNK_BYTES
    assert result.json == {
        "DatasetArn": f"{PROJECT_ARN}/dataset/train/1700000000000",
        "Images": [
            {"FileName": name, "SourceRef": f"s3://system/{hashlib.sha256(expected[name]).hexdigest()}"}
            for name in ("apple/1.jpg", "apple/2.png", "loose.PNG", "pear/x/3.jpeg")
        ],
    }
    assert result.out.startswith('{\n    "DatasetArn"')
    # stderr is no terminal here: plain progress lines
    lines = result.err.splitlines()
    assert lines[0].startswith("uploading 4 images (1.6 MB) to the DatasetService at 127.0.0.1:")
    assert lines[-1].startswith("uploaded 4/4 images  1.6/1.6 MB  ")
    assert "done in" in lines[-1]


def test_upload_images_into_an_existing_dataset_with_forced_labels_quietly(
    cli: Any, double: tuple[str, UploadDouble], clean: tuple[Path, dict[str, bytes]]
) -> None:
    root, _ = clean
    _, servicer = double
    result = cli(
        "upload-images", str(root), "--dataset-arn", DATASET_ARN, "--labels", "fruit", "food", "--quiet"
    )
    assert result.code == 0, result.err
    assert result.err == ""
    assert servicer.uploads[-1].target == ds.ImportTarget(dataset_arn=DATASET_ARN)
    assert {tuple(i.labels) for i in servicer.uploads[-1].images} == {("fruit", "food")}
    assert result.json["DatasetArn"] == DATASET_ARN


def test_upload_images_unlabeled(
    cli: Any, double: tuple[str, UploadDouble], clean: tuple[Path, dict[str, bytes]]
) -> None:
    root, _ = clean
    result = cli("upload-images", str(root), "--dataset-arn", DATASET_ARN, "--no-label-by-folder", "--quiet")
    assert result.code == 0, result.err
    assert {tuple(i.labels) for i in double[1].uploads[-1].images} == {()}


def test_rejected_images_give_a_summary_and_exit_1(
    cli: Any, double: tuple[str, UploadDouble], photos: tuple[Path, dict[str, bytes]]
) -> None:
    root, _ = photos
    write(root / "dogs" / "bad_photo.png", 100)
    result = cli("upload-images", str(root), "--dataset-arn", DATASET_ARN)
    assert result.code == upload.EXIT_REJECTED == 1
    images = result.json["Images"]
    assert len(images) == 6
    assert {"FileName": "dogs/bad_photo.png", "ErrorCode": "InvalidImageFormatException",
            "ErrorMessage": "The image is not a PNG or JPEG."} in images  # fmt: skip
    assert result.err.splitlines()[-2:] == [
        "1 of 6 images were not uploaded:",
        "  dogs/bad_photo.png: InvalidImageFormatException: The image is not a PNG or JPEG.",
    ]


def test_a_service_error_is_the_cli_error_line_and_254(
    cli: Any, clean: tuple[Path, dict[str, bytes]]
) -> None:
    root, _ = clean
    result = cli("upload-images", str(root), "--dataset-arn", MISSING_ARN)
    assert result.code == 254
    assert result.out == ""
    last = result.err.splitlines()[-1]
    assert last == (
        "An error occurred (ResourceNotFoundException) when calling the UploadImages operation: "
        f"The dataset {MISSING_ARN} does not exist"
    )
    assert "Traceback" not in result.err


def test_an_unreachable_service_is_255(
    capsys: pytest.CaptureFixture[str], clean: tuple[Path, dict[str, bytes]]
) -> None:
    root, _ = clean
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    code = main(
        ["upload-images", str(root), "--dataset-arn", DATASET_ARN, "--dataset-addr", closed, "--timeout", "5"]
    )
    err = capsys.readouterr().err
    assert code == 255
    assert f"Could not connect to the DatasetService at {closed}" in err or "did not answer" in err


def test_upload_images_to_a_server_without_the_operation_is_254(
    capsys: pytest.CaptureFixture[str], clean: tuple[Path, dict[str, bytes]]
) -> None:
    root, _ = clean
    servicer = ds_grpc.DatasetServiceServicer()  # today's placeholder: UNIMPLEMENTED
    name = ds.DESCRIPTOR.services_by_name["DatasetService"].full_name
    running = create_server(
        "127.0.0.1:0", [lambda server: ds_grpc.add_DatasetServiceServicer_to_server(servicer, server)], [name]
    )
    try:
        code = main(
            [
                "upload-images",
                str(root),
                "--dataset-arn",
                DATASET_ARN,
                "--dataset-addr",
                f"127.0.0.1:{running.port}",
                "--quiet",
            ]
        )
    finally:
        running.stop(0)
    err = capsys.readouterr().err
    assert code == 254
    assert err.startswith("An error occurred (InternalServerError) when calling the UploadImages operation: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give the target: --dataset-arn, or --project-arn with --dataset-type"),
        (["--project-arn", PROJECT_ARN], "--dataset-type is required with --project-arn"),
        (["--dataset-type", "TRAIN"], "give the target"),
        (
            ["--dataset-arn", DATASET_ARN, "--project-arn", PROJECT_ARN],
            "--dataset-arn cannot be combined with --project-arn",
        ),
        (["--dataset-arn", DATASET_ARN, "--tags", "a=b"], "--dataset-arn cannot be combined with --tags"),
        (["--project-arn", PROJECT_ARN, "--dataset-type", "VALIDATION"], "invalid choice: 'VALIDATION'"),
        (
            ["--project-arn", PROJECT_ARN, "--dataset-type", "TEST", "--tags", "novalue"],
            "--tags: expected KEY=VALUE",
        ),
        (["--dataset-arn", DATASET_ARN, "--labels", ""], "a label must be 1 to 255 characters long"),
        (["--dataset-arn", DATASET_ARN, "--labels", "x" * 256], "a label must be 1 to 255 characters long"),
    ],
)
def test_bad_arguments_exit_2(
    cli: Any, clean: tuple[Path, dict[str, bytes]], argv: list[str], message: str
) -> None:
    root, _ = clean
    result = cli("upload-images", str(root), *argv)
    assert result.code == 2
    assert message in result.err
    assert "usage: customlabels upload-images" in result.err


def test_a_missing_or_empty_folder_exits_2(cli: Any, tmp_path: Path) -> None:
    missing = cli("upload-images", str(tmp_path / "missing"), "--dataset-arn", DATASET_ARN)
    assert (missing.code, missing.out) == (2, "")
    assert "is not a directory" in missing.err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    empty = cli("upload-images", str(tmp_path / "empty"), "--dataset-arn", DATASET_ARN)
    assert empty.code == 2
    assert "no .jpg, .jpeg, .png files under" in empty.err
    assert cli("upload-images").code == 2  # DIR is required


def test_help_lists_upload_images_with_the_dataset_commands(cli: Any) -> None:
    result = cli("--help")
    assert result.code == 0
    dataset_part = result.out.split("DatasetService (--dataset-addr)")[1].split("TrainingService")[0]
    assert "upload-images" in dataset_part
    command = cli("upload-images", "--help")
    assert command.code == 0
    text = " ".join(command.out.split())
    assert "--no-label-by-folder" in text and "--dataset-type {TRAIN,TEST}" in text
    assert "Uploads local images as a chunked stream" in text


def test_rejected_count_includes_files_that_vanished(
    cli: Any,
    double: tuple[str, UploadDouble],
    clean: tuple[Path, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = clean
    real_select = upload.select_files

    def select_then_delete(*args: Any, **kwargs: Any) -> list[ImageFile]:
        files = real_select(*args, **kwargs)
        (root / "loose.PNG").unlink()
        return files

    monkeypatch.setattr(upload, "select_files", select_then_delete)
    result = cli("upload-images", str(root), "--dataset-arn", DATASET_ARN, "--quiet")
    assert result.code == 1
    assert [i["FileName"] for i in result.json["Images"]] == ["apple/1.jpg", "apple/2.png", "pear/x/3.jpeg"]
    assert result.err.splitlines() == [
        "1 of 4 images were not uploaded:",
        "  loose.PNG: not sent: cannot open: No such file or directory",
    ]
