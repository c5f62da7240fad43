"""The DatasetService gRPC adapter: validate the wire shape, call the domain, map the result."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from customlabels.common.v1 import types_pb2 as common
from customlabels.dataset.v1 import dataset_service_pb2 as pb
from customlabels.dataset.v1 import dataset_service_pb2_grpc as pb_grpc

from services.common import enums
from services.common.errors import InvalidParameter
from services.common.pagination import max_results
from services.common.timestamps import timestamp
from services.dataset.datasets import DatasetService, UploadedFile
from services.dataset.repository import DatasetRow, EntryFilter

TYPE = pb.DatasetType.DESCRIPTOR
STATUS = pb.DatasetStatus.DESCRIPTOR
CODE = pb.DatasetStatusMessageCode.DESCRIPTOR
MODEL_TYPE = common.ModelType.DESCRIPTOR
COCO_MODE = pb.CocoImportMode.DESCRIPTOR

MAX_UPLOAD_IMAGE_BYTES = 15 * 1024 * 1024


def metadata(row: DatasetRow) -> pb.DatasetMetadata:
    """The DatasetMetadata of a dataset (DescribeProjects' Datasets[])."""
    return pb.DatasetMetadata(
        creation_timestamp=timestamp(row.created_ms),
        dataset_type=enums.from_aws(TYPE, row.dataset_type),  # type: ignore[arg-type]
        dataset_arn=row.arn,
        status=enums.from_aws(STATUS, row.status),  # type: ignore[arg-type]
        status_message=row.status_message,
        status_message_code=enums.from_aws(CODE, row.status_message_code),  # type: ignore[arg-type]
    )


def _s3(obj: common.S3Object) -> tuple[str, str, str | None]:
    return obj.bucket, obj.name, obj.version or None


def _target(target: pb.ImportTarget) -> tuple[str | None, tuple[str, str, dict[str, str]] | None]:
    which = target.WhichOneof("target")
    if which == "dataset_arn":
        return target.dataset_arn, None
    if which == "new_dataset":
        new = target.new_dataset
        dataset_type = enums.to_aws(TYPE, new.dataset_type) or ""
        return None, (new.project_arn, dataset_type, dict(new.tags))
    raise InvalidParameter("Target is required: a DatasetArn or a NewDataset")


class DatasetServicer(pb_grpc.DatasetServiceServicer):
    """Serves the dataset operations of spec/api.md §3, the extra imports and the internal calls."""

    def __init__(self, service: DatasetService) -> None:
        self.service = service

    def CreateDataset(
        self, request: pb.CreateDatasetRequest, context: grpc.ServicerContext
    ) -> pb.CreateDatasetResponse:
        """Creates a TRAIN or TEST dataset."""
        manifest_ref, source_arn = None, None
        if request.HasField("dataset_source"):
            source = request.dataset_source
            has_manifest = source.HasField("ground_truth_manifest")
            if has_manifest == bool(source.dataset_arn):
                raise InvalidParameter("DatasetSource needs exactly one of GroundTruthManifest or DatasetArn")
            if has_manifest:
                if not source.ground_truth_manifest.HasField("s3_object"):
                    raise InvalidParameter("DatasetSource.GroundTruthManifest.S3Object is required")
                manifest_ref = _s3(source.ground_truth_manifest.s3_object)
            else:
                source_arn = source.dataset_arn
        arn = self.service.create_dataset(
            request.project_arn,
            enums.to_aws(TYPE, request.dataset_type) or "",
            manifest_ref,
            source_arn,
            dict(request.tags),
        )
        return pb.CreateDatasetResponse(dataset_arn=arn)

    def DescribeDataset(
        self, request: pb.DescribeDatasetRequest, context: grpc.ServicerContext
    ) -> pb.DescribeDatasetResponse:
        """Describes a dataset with its statistics."""
        row = self.service.get(request.dataset_arn)
        return pb.DescribeDatasetResponse(
            dataset_description=pb.DatasetDescription(
                creation_timestamp=timestamp(row.created_ms),
                last_updated_timestamp=timestamp(row.updated_at),
                status=enums.from_aws(STATUS, row.status),  # type: ignore[arg-type]
                status_message=row.status_message,
                status_message_code=enums.from_aws(CODE, row.status_message_code),  # type: ignore[arg-type]
                dataset_stats=pb.DatasetStats(
                    labeled_entries=row.labeled_entries,
                    total_entries=row.total_entries,
                    total_labels=row.total_labels,
                    error_entries=row.error_entries,
                ),
                model_type=enums.from_aws(MODEL_TYPE, row.model_type) if row.model_type else 0,  # type: ignore[arg-type]
            )
        )

    def DeleteDataset(
        self, request: pb.DeleteDatasetRequest, context: grpc.ServicerContext
    ) -> pb.DeleteDatasetResponse:
        """Deletes a dataset."""
        self.service.delete(request.dataset_arn)
        return pb.DeleteDatasetResponse()

    def ListDatasetEntries(
        self, request: pb.ListDatasetEntriesRequest, context: grpc.ServicerContext
    ) -> pb.ListDatasetEntriesResponse:
        """Lists entries with filters."""
        flt = EntryFilter(
            contains_labels=list(request.contains_labels),
            labeled=request.labeled if request.HasField("labeled") else None,
            source_ref_contains=request.source_ref_contains
            if request.HasField("source_ref_contains")
            else None,
            has_errors=request.HasField("has_errors") and request.has_errors,
        )
        page = self.service.list_entries(
            request.dataset_arn,
            flt,
            request.next_token,
            max_results(request.max_results, request.HasField("max_results"), 100),
        )
        return pb.ListDatasetEntriesResponse(dataset_entries=page.items, next_token=page.next_token or "")

    def ListDatasetLabels(
        self, request: pb.ListDatasetLabelsRequest, context: grpc.ServicerContext
    ) -> pb.ListDatasetLabelsResponse:
        """Lists labels with their statistics."""
        page = self.service.list_labels(
            request.dataset_arn,
            request.next_token,
            max_results(request.max_results, request.HasField("max_results"), 100),
        )
        return pb.ListDatasetLabelsResponse(
            dataset_label_descriptions=[
                pb.DatasetLabelDescription(
                    label_name=label.name,
                    label_stats=pb.DatasetLabelStats(
                        entry_count=label.entry_count, bounding_box_count=label.bounding_box_count
                    ),
                )
                for label in page.items
            ],
            next_token=page.next_token or "",
        )

    def UpdateDatasetEntries(
        self, request: pb.UpdateDatasetEntriesRequest, context: grpc.ServicerContext
    ) -> pb.UpdateDatasetEntriesResponse:
        """Adds or replaces entries."""
        self.service.update_entries(request.dataset_arn, request.changes.ground_truth)
        return pb.UpdateDatasetEntriesResponse()

    def DistributeDatasetEntries(
        self, request: pb.DistributeDatasetEntriesRequest, context: grpc.ServicerContext
    ) -> pb.DistributeDatasetEntriesResponse:
        """Moves 20 % of TRAIN into the empty TEST dataset."""
        self.service.distribute([d.arn for d in request.datasets])
        return pb.DistributeDatasetEntriesResponse()

    def ImportS3Folder(
        self, request: pb.ImportS3FolderRequest, context: grpc.ServicerContext
    ) -> pb.ImportS3FolderResponse:
        """Imports the images under an object-store prefix."""
        arn, new = _target(request.target)
        dataset_arn = self.service.import_s3_folder(
            arn, new, request.s3_bucket, request.s3_key_prefix, request.label_by_folder
        )
        return pb.ImportS3FolderResponse(dataset_arn=dataset_arn)

    def ImportCoco(
        self, request: pb.ImportCocoRequest, context: grpc.ServicerContext
    ) -> pb.ImportCocoResponse:
        """Imports a COCO annotation file."""
        arn, new = _target(request.target)
        which = request.WhichOneof("coco")
        dataset_arn = self.service.import_coco(
            arn,
            new,
            _s3(request.coco_s3_object) if which == "coco_s3_object" else None,
            request.coco_json if which == "coco_json" else None,
            request.images_s3_bucket,
            request.images_s3_key_prefix,
            enums.to_aws(COCO_MODE, request.mode) or "OBJECT_LOCALIZATION",
        )
        return pb.ImportCocoResponse(dataset_arn=dataset_arn)

    def UploadImages(
        self, request_iterator: Iterator[pb.UploadImagesRequest], context: grpc.ServicerContext
    ) -> pb.UploadImagesResponse:
        """Receives images over a client stream and imports them."""
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidParameter("the first UploadImages message must be the header")
        arn, new = _target(first.header.target)
        dataset_arn, outcomes = self.service.upload_images(arn, new, _files(request_iterator))
        return pb.UploadImagesResponse(
            dataset_arn=dataset_arn,
            images=[
                pb.UploadedImage(
                    file_name=o.file_name,
                    source_ref=o.source_ref,
                    error_code=o.error_code,
                    error_message=o.error_message,
                )
                for o in outcomes
            ],
        )

    def GetDatasetImage(
        self, request: pb.GetDatasetImageRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetDatasetImageResponse]:
        """Streams a stored image or its thumbnail: the header, then chunks of at most 1 MiB."""
        image = self.service.get_image(
            request.dataset_arn, request.source_ref, request.image_key, request.max_side
        )
        yield pb.GetDatasetImageResponse(
            header=pb.DatasetImageHeader(
                content_type=image.content_type,
                size_bytes=len(image.data),
                width=image.width,
                height=image.height,
                etag=image.etag,
            )
        )
        for chunk in image.chunks():
            yield pb.GetDatasetImageResponse(chunk=chunk)

    def ListProjectDatasets(
        self, request: pb.ListProjectDatasetsRequest, context: grpc.ServicerContext
    ) -> pb.ListProjectDatasetsResponse:
        """Returns the datasets of projects (internal: DescribeProjects, DeleteProject)."""
        groups = self.service.datasets_of(list(request.project_arns))
        return pb.ListProjectDatasetsResponse(
            projects=[
                pb.ProjectDatasets(project_arn=a, datasets=[metadata(r) for r in groups.get(a, [])])
                for a in request.project_arns
            ]
        )

    def ExportDatasetEntries(
        self, request: pb.ExportDatasetEntriesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ExportDatasetEntriesResponse]:
        """Streams a consistent snapshot of the entries (internal: training)."""
        images_bucket = self.service.images_bucket
        for batch in self.service.export(
            request.dataset_arn, request.include_error_entries, request.include_unlabeled
        ):
            yield pb.ExportDatasetEntriesResponse(
                entries=[
                    pb.ExportedDatasetEntry(
                        dataset_entry=e.line,
                        image=common.S3Object(bucket=images_bucket, name=e.image_key)
                        if e.image_key
                        else None,
                        image_width=e.image_width or 0,
                        image_height=e.image_height or 0,
                    )
                    for e in batch
                ]
            )


def _files(requests: Iterator[pb.UploadImagesRequest]) -> Iterator[UploadedFile]:
    """Reassembles the image/chunk messages into whole files, one at a time."""
    header: pb.UploadImageHeader | None = None
    parts: list[bytes] = []
    size = 0
    for message in requests:
        which = message.WhichOneof("payload")
        if which == "image":
            if header is not None:
                yield UploadedFile(header.file_name, list(header.labels), b"".join(parts))
            header, parts, size = message.image, [], 0
        elif which == "chunk":
            if header is None:
                raise InvalidParameter("an image chunk arrived before its image header")
            # Past the limit keep only one byte more than it: the image is then rejected as too
            # large on its own, the rest of the stream goes on, and memory stays bounded.
            room = MAX_UPLOAD_IMAGE_BYTES + 1 - size
            if room > 0:
                parts.append(message.chunk[:room])
                size += min(room, len(message.chunk))
        else:
            raise InvalidParameter("the UploadImages header may appear only once, first")
    if header is not None:
        yield UploadedFile(header.file_name, list(header.labels), b"".join(parts))
