"""`customlabels upload-images DIR`: uploads local images over the client-streaming UploadImages RPC.

    customlabels upload-images photos/ --project-arn ARN --dataset-type TRAIN
    customlabels upload-images photos/ --dataset-arn ARN --labels defect

Every .jpg, .jpeg and .png file (any case) below DIR is sent, in sorted path order; hidden files
and folders (names starting with ".") are left out, and symbolic links to folders are not
followed. An image in DIR/<child>/... is labeled <child> (deeper folders are ignored, as the S3
folder import does); images directly in DIR are unlabeled. --no-label-by-folder uploads all of
them unlabeled, --labels gives every image the same labels instead.

The stream is the header (the target dataset), then per image an `image` message (relative file
name, labels, size) followed by its bytes in chunks of at most 1 MiB; files are read one chunk at a
time, so memory stays flat however many images there are. A progress line goes to stderr.

The response prints as AWS JSON. Exit status: 0 every image accepted, 1 some were rejected (or
could not be read; a summary goes to stderr), otherwise the CLI's usual 2 / 254 / 255 / 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
from customlabels.dataset.v1 import dataset_service_pb2 as pb

from services.cli.arguments import ArgumentError, Flag
from services.cli.operations import SERVICES, Operation
from services.common import awsjson, clients, errors
from services.common.auth import GrpcSecurity
from services.dataset.importers import IMAGE_EXTENSIONS, MAX_LABEL_LENGTH

_DATASET = next(service for service in SERVICES if service.key == "dataset")
OPERATION = Operation(_DATASET, _DATASET.descriptor.methods_by_name["UploadImages"])
COMMAND = OPERATION.command  # upload-images

CHUNK_BYTES = 1024 * 1024  # the proto's "keep each chunk at or under 1 MiB"
EXIT_REJECTED = 1
PLAIN_INTERVAL_S = 5.0  # a progress line at most this often when stderr is no terminal
TTY_INTERVAL_S = 0.1

# The target flags are the fields of ImportTarget / NewDataset, documented by their proto comments.
_TARGET_FLAGS = (
    Flag(pb.ImportTarget.DESCRIPTOR.fields_by_name["dataset_arn"]),
    Flag(pb.NewDataset.DESCRIPTOR.fields_by_name["project_arn"]),
    Flag(pb.NewDataset.DESCRIPTOR.fields_by_name["dataset_type"]),
    Flag(pb.NewDataset.DESCRIPTOR.fields_by_name["tags"]),
)

# on_progress(images_done, bytes_done): cumulative counts, called after every chunk and image.
ProgressCallback = Callable[[int, int], None]
# on_skip(file_name, reason): a file that is not (completely) sent.
SkipCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class ImageFile:
    """One local image to upload."""

    path: Path
    file_name: str  # relative to DIR, with "/" separators
    labels: tuple[str, ...]
    size: int


def _label(text: str) -> str:
    if not 1 <= len(text) <= MAX_LABEL_LENGTH:
        raise argparse.ArgumentTypeError(f"a label must be 1 to {MAX_LABEL_LENGTH} characters long")
    return text


def _usable_name(name: str) -> bool:
    try:
        name.encode("utf-8")  # names the file system could not decode carry surrogates
    except UnicodeEncodeError:
        return False
    return True


def select_files(
    root: Path,
    label_by_folder: bool = True,
    labels: Sequence[str] | None = None,
    on_skip: SkipCallback | None = None,
) -> list[ImageFile]:
    """Returns the images below `root` to upload, sorted by relative path, with their labels.

    `labels` (when given) label every image; otherwise an image in root/<child>/... is labeled
    <child> when `label_by_folder`. Hidden files and folders are skipped silently; names that are
    not valid UTF-8 and folder names too long for a label are reported through `on_skip`.
    """
    found: list[ImageFile] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(folder)
        for filename in filenames:
            if filename.startswith(".") or not filename.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = base / filename
            relative = path.relative_to(root).as_posix()
            if not _usable_name(relative):
                if on_skip:
                    on_skip(relative.encode("utf-8", "replace").decode(), "the path is not valid UTF-8")
                continue
            if not path.is_file():
                continue
            image_labels: tuple[str, ...] = ()
            if labels:
                image_labels = tuple(dict.fromkeys(labels))
            elif label_by_folder and "/" in relative:
                child = relative.split("/", 1)[0]
                if len(child) > MAX_LABEL_LENGTH:
                    if on_skip:
                        on_skip(relative, f"the folder name is longer than {MAX_LABEL_LENGTH} characters")
                    continue
                image_labels = (child,)
            found.append(ImageFile(path, relative, image_labels, path.stat().st_size))
    found.sort(key=lambda image: image.file_name)
    return found


def upload_requests(
    target: pb.ImportTarget,
    files: Iterable[ImageFile],
    on_progress: ProgressCallback | None = None,
    *,
    on_skip: SkipCallback | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[pb.UploadImagesRequest]:
    """Yields the UploadImages stream: the header, then per image its `image` message and chunks.

    Lazy: a file is opened when its turn comes and read one chunk at a time. A file that cannot
    be opened is left out (reported through `on_skip`); one that fails while being read ends
    early and is reported too.
    """
    if not 0 < chunk_bytes <= CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be 1 to {CHUNK_BYTES}")
    yield pb.UploadImagesRequest(header=pb.UploadImagesHeader(target=target))
    images_done = bytes_done = 0
    for image in files:
        try:
            handle = image.path.open("rb")
        except OSError as exc:
            if on_skip:
                on_skip(image.file_name, f"cannot open: {exc.strerror or exc}")
            continue
        with handle:
            size = os.fstat(handle.fileno()).st_size
            header = pb.UploadImageHeader(file_name=image.file_name, labels=image.labels, size_bytes=size)
            yield pb.UploadImagesRequest(image=header)
            while True:
                try:
                    chunk = handle.read(chunk_bytes)
                except OSError as exc:
                    if on_skip:
                        on_skip(image.file_name, f"read failed: {exc.strerror or exc}")
                    break
                if not chunk:
                    break
                yield pb.UploadImagesRequest(chunk=chunk)
                bytes_done += len(chunk)
                if on_progress:
                    on_progress(images_done, bytes_done)
        images_done += 1
        if on_progress:
            on_progress(images_done, bytes_done)


# --------------------------------------------------------------------------- progress


def _mb(count: float) -> str:
    return f"{count / 1e6:.1f}"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """The progress display on stderr: a redrawn bar on a terminal, a plain line now and then otherwise."""

    def __init__(
        self,
        total_images: int,
        total_bytes: int,
        stream: IO[str] | None = None,
        *,
        quiet: bool = False,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        width: int = 24,
    ) -> None:
        self.total_images = total_images
        self.total_bytes = total_bytes
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.width = width
        self.images = self.bytes = 0
        self._start = clock()
        self._last_shown: float | None = None
        self._line_open = False  # a bar is drawn without its newline
        self._lock = threading.Lock()

    def start(self, where: str) -> None:
        """Says what is about to be uploaded (plain mode only; the bar speaks for itself)."""
        if not self.quiet and not self.tty:
            self._write(
                f"uploading {self.total_images} images ({_mb(self.total_bytes)} MB) to {where}\n", close=False
            )

    def update(self, images: int, bytes_done: int) -> None:
        """Records cumulative counts; redraws when the last drawing is old enough."""
        with self._lock:
            self.images, self.bytes = images, bytes_done
            now = self.clock()
            interval = TTY_INTERVAL_S if self.tty else PLAIN_INTERVAL_S
            if self._last_shown is not None and now - self._last_shown < interval:
                return
            if self._last_shown is None and not self.tty and now - self._start < interval:
                return  # plain mode: the first line after one interval, not at once
            self._last_shown = now
            self._show(now)

    def finish(self) -> None:
        """Draws the final state and ends the bar's line."""
        with self._lock:
            self._show(self.clock())
            self.close()

    def close(self) -> None:
        """Ends a bar left open (before an error message, say)."""
        if self._line_open:
            self._line_open = False
            self.stream.write("\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        """Returns the progress text: images, MB, rate and time left."""
        elapsed = max(now - self._start, 1e-9)
        rate = self.bytes / elapsed
        remaining = max(self.total_bytes - self.bytes, 0)
        if remaining == 0 and self.images >= self.total_images:
            eta = f"done in {_duration(elapsed)}"
        elif rate > 0:
            eta = f"ETA {_duration(remaining / rate)}"
        else:
            eta = "ETA --:--:--"
        return (
            f"{self.images}/{self.total_images} images  {_mb(self.bytes)}/{_mb(self.total_bytes)} MB  "
            f"{_mb(rate)} MB/s  {eta}"
        )

    def _show(self, now: float) -> None:
        if self.quiet:
            return
        text = self.line(now)
        if self.tty:
            fraction = (
                self.bytes / self.total_bytes if self.total_bytes else self.images / max(self.total_images, 1)
            )
            filled = int(min(fraction, 1.0) * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self._write(f"\r[{bar}] {text}\x1b[K", close=True)
        else:
            self._write(f"uploaded {text}\n", close=False)

    def _write(self, text: str, close: bool) -> None:
        self.stream.write(text)
        self.stream.flush()
        self._line_open = close


# --------------------------------------------------------------------------- the command


def add_parser(
    subparsers: Any, docs: Mapping[str, str], global_options: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """Adds the upload-images command to the CLI's subparsers; returns its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        COMMAND,
        description=docs.get(OPERATION.method.full_name),
        epilog=(
            "Target: --dataset-arn, or --project-arn with --dataset-type (a new dataset). The upload has "
            "no deadline unless --timeout is given. Exit status: 0 "
            "every image accepted, 1 some rejected or unreadable, 2 bad arguments, 254 service error, "
            "255 no answer."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("directory", metavar="DIR", type=Path, help="the folder holding the images")
    group = parser.add_argument_group("target dataset (exactly one)")
    for flag in _TARGET_FLAGS:
        flag.add_to(group, docs.get(flag.field.full_name, ""))
    parser.add_argument(
        "--label-by-folder",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="label each image in DIR/<child>/... with <child> (default); images in DIR stay unlabeled",
    )
    parser.add_argument(
        "--labels", nargs="+", type=_label, metavar="LABEL", help="give every image these labels instead"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    global_options(parser)
    return parser


@dataclass
class Plan:
    """A checked upload-images command: where to upload what."""

    target: pb.ImportTarget
    files: list[ImageFile]
    quiet: bool
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _target(args: argparse.Namespace) -> pb.ImportTarget:
    given = {flag.field.name: getattr(args, flag.dest, None) for flag in _TARGET_FLAGS}
    if given["dataset_arn"] is not None:
        extra = [
            f"--{name.replace('_', '-')}" for name, value in given.items() if value and name != "dataset_arn"
        ]
        if extra:
            raise ArgumentError(f"--dataset-arn cannot be combined with {', '.join(extra)}")
        document: dict[str, Any] = {"DatasetArn": _TARGET_FLAGS[0].to_aws(given["dataset_arn"], False)}
    elif given["project_arn"] is None:
        raise ArgumentError("give the target: --dataset-arn, or --project-arn with --dataset-type")
    elif given["dataset_type"] is None:
        raise ArgumentError("--dataset-type is required with --project-arn")
    else:
        document = {
            "NewDataset": {
                awsjson.aws_name(flag.field): flag.to_aws(given[flag.field.name], False)
                for flag in _TARGET_FLAGS[1:]
                if given[flag.field.name] is not None
            }
        }
    try:
        return awsjson.from_aws(document, pb.ImportTarget)
    except errors.InvalidParameter as exc:
        raise ArgumentError(exc.message) from None


def prepare(args: argparse.Namespace) -> Plan:
    """Checks the command's arguments and lists the files; raises ArgumentError (exit 2)."""
    target = _target(args)
    root: Path = args.directory
    if not root.is_dir():
        raise ArgumentError(f"{root} is not a directory")
    skipped: list[tuple[str, str]] = []
    files = select_files(
        root, args.label_by_folder, args.labels, on_skip=lambda name, why: skipped.append((name, why))
    )
    if not files:
        raise ArgumentError(f"no {', '.join(IMAGE_EXTENSIONS)} files under {root}")
    return Plan(target, files, args.quiet, skipped)


def run(plan: Plan, addr: str, timeout: float | None, security: GrpcSecurity | None = None) -> int:
    """Streams the images to the dataset service at `addr` and prints the response.

    Raises grpc.RpcError (the CLI reports it) and KeyboardInterrupt (the call is cancelled).
    """
    progress = Progress(len(plan.files), sum(image.size for image in plan.files), quiet=plan.quiet)
    skipped = list(plan.skipped)
    requests = upload_requests(
        plan.target, plan.files, progress.update, on_skip=lambda name, why: skipped.append((name, why))
    )
    progress.start(f"the {_DATASET.descriptor.name} at {addr}")
    with clients.channel(addr, security) as channel:
        call = _DATASET.stub(channel).UploadImages.future(requests, timeout=timeout)
        try:
            response = call.result()
        except KeyboardInterrupt:
            call.cancel()
            progress.close()
            raise
        except grpc.RpcError:
            progress.close()
            raise
    progress.finish()
    print(json.dumps(awsjson.to_aws(response), indent=4, ensure_ascii=False))
    rejected = [image for image in response.images if image.error_code]
    if not rejected and not skipped:
        return 0
    failed = {name for name, _ in skipped} | {image.file_name for image in rejected}
    total = len(plan.files) + len(plan.skipped)
    lines = [f"{len(failed)} of {total} images were not uploaded:"]
    lines += [f"  {name}: not sent: {why}" for name, why in skipped]
    lines += [f"  {image.file_name}: {image.error_code}: {image.error_message}" for image in rejected]
    print("\n".join(lines), file=sys.stderr)
    return EXIT_REJECTED
