"""Browser uploads: the files of one multipart request become one UploadImages stream.

The page sends `target` (AWS JSON of ImportTarget: {"DatasetArn": ...} or {"NewDataset": {...}}),
`labels` (a JSON list with one list of labels per file, in file order) and the files, each named by
its path relative to what the user dropped. Files are read from the parsed form one chunk at a
time into the stream (services/cli/upload.py does the same for local folders), so memory stays
flat. A file above the image size limit is answered ImageTooLargeException without being sent; the
dataset service checks everything else (format, dimensions, names) and answers per file. File names
arrive with the browser's multipart escapes (%22 for '"'), which are undone first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from customlabels.dataset.v1 import dataset_service_pb2 as ds

from services.common import awsjson
from services.common.errors import InvalidParameter
from services.console.backends import Backends
from services.console.labeling import check_label

CHUNK_BYTES = 1024 * 1024  # the proto's "keep each chunk at or under 1 MiB"
# spec/limits.md §1: training and test images are at most 15 MB.
MAX_IMAGE_BYTES = 15 * 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """One file of the request: its relative name, labels, size and an open file."""

    file_name: str
    labels: tuple[str, ...]
    size: int
    file: IO[bytes]


def parse_target(text: Any) -> ds.ImportTarget:
    """The `target` field: AWS JSON of ImportTarget."""
    if type(text) is not str:
        raise InvalidParameter("target must be a JSON object naming DatasetArn or NewDataset")
    try:
        document = json.loads(text)
    except ValueError:
        raise InvalidParameter("target is not valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidParameter("target must be a JSON object naming DatasetArn or NewDataset")
    return awsjson.from_aws(document, ds.ImportTarget)


def parse_labels(text: Any, count: int) -> list[tuple[str, ...]]:
    """The `labels` field: one list of label names per file (absent: all unlabeled)."""
    if text is None or text == "":
        return [()] * count
    try:
        document = json.loads(text) if type(text) is str else None
    except ValueError:
        document = None
    if type(document) is not list or len(document) != count or not all(type(x) is list for x in document):
        raise InvalidParameter(
            f"labels must be a JSON list holding one list of labels for each of the {count} files"
        )
    return [tuple(dict.fromkeys(check_label(name) for name in names)) for names in document]


# WHATWG multipart/form-data: browsers send a file name's '"', CR and LF as %22, %0D and %0A.
_ESCAPES = {"%22": '"', "%0D": "\r", "%0A": "\n"}


def file_name(sent: str) -> str:
    """The name the user's file has: the browser's multipart escapes undone (CR and LF come back as
    control characters, which the dataset service refuses as it refuses them from any client)."""
    out, index = [], 0
    while index < len(sent):
        escape = sent[index : index + 3].upper()
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            index += 3
        else:
            out.append(sent[index])
            index += 1
    return "".join(out)


def _messages(target: ds.ImportTarget, uploads: Sequence[Upload]) -> Iterator[ds.UploadImagesRequest]:
    yield ds.UploadImagesRequest(header=ds.UploadImagesHeader(target=target))
    for upload in uploads:
        yield ds.UploadImagesRequest(
            image=ds.UploadImageHeader(
                file_name=file_name(upload.file_name), labels=upload.labels, size_bytes=upload.size
            )
        )
        upload.file.seek(0)
        while chunk := upload.file.read(CHUNK_BYTES):
            yield ds.UploadImagesRequest(chunk=chunk)


def upload(backends: Backends, target: ds.ImportTarget, uploads: Sequence[Upload]) -> dict[str, Any]:
    """Sends the acceptable files in one UploadImages stream; returns its AWS JSON answer with every
    file's outcome in request order (the ones refused here included)."""
    if not uploads:
        raise InvalidParameter("Choose at least one image to upload")
    if target.WhichOneof("target") is None:
        raise InvalidParameter("target must name DatasetArn or NewDataset")
    refused: dict[int, ds.UploadedImage] = {}
    sent: list[Upload] = []
    for index, item in enumerate(uploads):
        if item.size > MAX_IMAGE_BYTES:
            refused[index] = ds.UploadedImage(
                file_name=file_name(item.file_name),
                error_code="ImageTooLargeException",
                error_message=f"The file is {item.size / 1048576:.1f} MB; images can be at most 15 MB",
            )
        elif item.size == 0:
            refused[index] = ds.UploadedImage(
                file_name=file_name(item.file_name),
                error_code="InvalidImageFormatException",
                error_message="The file is empty",
            )
        else:
            sent.append(item)
    if sent:
        (response,) = backends.stream("UploadImages", _messages(target, sent), timeout_s=600)
    else:
        response = ds.UploadImagesResponse(
            dataset_arn=target.dataset_arn if target.WhichOneof("target") == "dataset_arn" else ""
        )
    answered = iter(response.images)
    outcomes = [refused[index] if index in refused else next(answered) for index in range(len(uploads))]
    result = ds.UploadImagesResponse(dataset_arn=response.dataset_arn, images=outcomes)
    return awsjson.to_aws(result)
