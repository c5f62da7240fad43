"""The TrainingService gRPC adapter: validate the wire shape, call the domain, map the result."""

from __future__ import annotations

import grpc
from customlabels.common.v1 import types_pb2 as common
from customlabels.training.v1 import training_service_pb2 as pb
from customlabels.training.v1 import training_service_pb2_grpc as pb_grpc

from services.common import enums
from services.common.pagination import max_results
from services.common.timestamps import timestamp
from services.training.evaluation import Box
from services.training.repository import VersionRow
from services.training.results import ResultImage
from services.training.versions import S3Ref, VersionService

STATUS = pb.ProjectVersionStatus.DESCRIPTOR
PHASE = pb.TrainingPhase.DESCRIPTOR
MODEL_TYPE = common.ModelType.DESCRIPTOR
OUTCOME = pb.TestOutcome.DESCRIPTOR
# evaluation.Outcome kinds → TestOutcome.
OUTCOMES = {
    "TP": pb.TEST_OUTCOME_TRUE_POSITIVE,
    "FP": pb.TEST_OUTCOME_FALSE_POSITIVE,
    "FN": pb.TEST_OUTCOME_FALSE_NEGATIVE,
    "TN": pb.TEST_OUTCOME_TRUE_NEGATIVE,
}


def _asset(bucket: str, key: str | None) -> common.Asset | None:
    if not key:
        return None
    return common.Asset(
        ground_truth_manifest=common.GroundTruthManifest(s3_object=common.S3Object(bucket=bucket, name=key))
    )


def _assets(bucket: str, key: str | None) -> list[common.Asset]:
    asset = _asset(bucket, key)
    return [asset] if asset else []


def _refs(assets: list[common.Asset]) -> list[S3Ref]:
    return [
        S3Ref(
            a.ground_truth_manifest.s3_object.bucket,
            a.ground_truth_manifest.s3_object.name,
            a.ground_truth_manifest.s3_object.version or None,
        )
        for a in assets
    ]


def description(row: VersionRow) -> pb.ProjectVersionDescription:
    """The ProjectVersionDescription of a stored version (every field the spec lists, when known)."""
    out_bucket, files = row.output_bucket, row.files
    external = row.inputs.get("training")
    train_input = (
        [
            common.Asset(
                ground_truth_manifest=common.GroundTruthManifest(
                    s3_object=common.S3Object(
                        bucket=a["bucket"], name=a["name"], version=a.get("version") or ""
                    )
                )
            )
            for a in external
        ]
        if external
        else _assets(out_bucket, files.get("train_input"))
    )
    test_external = row.inputs.get("testing")
    test_input = (
        [
            common.Asset(
                ground_truth_manifest=common.GroundTruthManifest(
                    s3_object=common.S3Object(
                        bucket=a["bucket"], name=a["name"], version=a.get("version") or ""
                    )
                )
            )
            for a in test_external
        ]
        if test_external
        else _assets(out_bucket, files.get("test_input"))
    )
    desc = pb.ProjectVersionDescription(
        project_version_arn=row.arn,
        creation_timestamp=timestamp(row.created_ms),
        status=enums.from_aws(STATUS, row.status),  # type: ignore[arg-type]
        status_message=row.status_message,
        output_config=common.OutputConfig(s3_bucket=row.output_bucket, s3_key_prefix=row.output_prefix),
        training_data_result=pb.TrainingDataResult(
            input=common.TrainingData(assets=train_input),
            output=common.TrainingData(assets=_assets(out_bucket, files.get("train_output"))),
            validation=common.ValidationData(assets=_assets(out_bucket, files.get("train_validation"))),
        ),
        testing_data_result=pb.TestingDataResult(
            input=common.TestingData(assets=test_input, auto_create=bool(row.inputs.get("auto_create"))),
            output=common.TestingData(assets=_assets(out_bucket, files.get("test_output"))),
            validation=common.ValidationData(assets=_assets(out_bucket, files.get("test_validation"))),
        ),
        kms_key_id=row.kms_key_id or "",
        source_project_version_arn=row.source_version_arn or "",
        version_description=row.description or "",
        feature=common.CUSTOMIZATION_FEATURE_CUSTOM_LABELS,
        model_type=enums.from_aws(MODEL_TYPE, row.model_type) if row.model_type else 0,  # type: ignore[arg-type]
    )
    if row.min_units is not None:
        desc.min_inference_units = row.min_units
    if row.max_units is not None:
        desc.max_inference_units = row.max_units
    if row.billable_s is not None:
        desc.billable_training_time_in_seconds = row.billable_s
    if row.training_end_at is not None:
        desc.training_end_timestamp.CopyFrom(timestamp(row.training_end_at))
    if files.get("manifest_summary"):
        desc.manifest_summary.CopyFrom(
            common.GroundTruthManifest(
                s3_object=common.S3Object(bucket=out_bucket, name=files["manifest_summary"])
            )
        )
    if row.f1 is not None and files.get("summary"):
        desc.evaluation_result.CopyFrom(
            pb.EvaluationResult(
                f1_score=row.f1,
                summary=pb.Summary(s3_object=common.S3Object(bucket=out_bucket, name=files["summary"])),
            )
        )
    if row.map is not None:
        desc.mean_average_precision = row.map
    if row.progress:
        p = row.progress
        progress = pb.TrainingProgress(
            phase=enums.from_aws(PHASE, p.get("phase", "QUEUED")),  # type: ignore[arg-type]
            percent=float(p.get("percent", 0.0)),
            attempt=int(p.get("attempt", 0)),
            last_updated_timestamp=timestamp(int(p.get("updated_ms", row.created_ms))),
        )
        if p.get("eta_seconds") is not None:
            progress.eta_seconds = int(p["eta_seconds"])
        desc.training_progress.CopyFrom(progress)
    return desc


def _box(box: Box | None) -> pb.TestBoundingBox | None:
    if box is None:
        return None
    return pb.TestBoundingBox(left=box.left, top=box.top, width=box.width, height=box.height)


def result_message(image: ResultImage) -> pb.TestResult:
    """The TestResult of one test image (confidences 0-100, as DetectCustomLabels reports them)."""
    truth = image.evaluated.ground_truth
    return pb.TestResult(
        source_ref=image.evaluated.source_ref,
        image=common.S3Object(bucket=image.image.bucket, name=image.image.key) if image.image else None,
        width=image.width,
        height=image.height,
        ground_truth=[pb.TestGroundTruthLabel(name=b.label, bounding_box=_box(b)) for b in truth.boxes]
        if truth.boxes
        else [pb.TestGroundTruthLabel(name=label) for label in sorted(truth.labels)],
        predictions=[
            pb.TestPrediction(
                name=o.label,
                confidence=100.0 * o.confidence,
                outcome=OUTCOMES[o.kind],
                bounding_box=_box(o.box),
                present_in_ground_truth=o.present_in_ground_truth,
            )
            for o in image.evaluated.outcomes
        ],
    )


class TrainingServicer(pb_grpc.TrainingServiceServicer):
    """Serves the model-version operations of spec/api.md §4 and the internal calls."""

    def __init__(self, service: VersionService) -> None:
        self.service = service

    def CreateProjectVersion(
        self, request: pb.CreateProjectVersionRequest, context: grpc.ServicerContext
    ) -> pb.CreateProjectVersionResponse:
        """Creates a version and queues its training."""
        has_training, has_testing = request.HasField("training_data"), request.HasField("testing_data")
        arn = self.service.create_version(
            request.project_arn,
            request.version_name,
            (request.output_config.s3_bucket, request.output_config.s3_key_prefix)
            if request.HasField("output_config")
            else None,
            _refs(list(request.training_data.assets)) if has_training else None,
            _refs(list(request.testing_data.assets)) if has_testing else None,
            request.testing_data.auto_create
            if has_testing and request.testing_data.HasField("auto_create")
            else None,
            dict(request.tags),
            request.kms_key_id or None,
            request.version_description or None,
            request.HasField("feature_config"),
        )
        return pb.CreateProjectVersionResponse(project_version_arn=arn)

    def DescribeProjectVersions(
        self, request: pb.DescribeProjectVersionsRequest, context: grpc.ServicerContext
    ) -> pb.DescribeProjectVersionsResponse:
        """Lists a project's versions, newest first."""
        page = self.service.describe(
            request.project_arn,
            list(request.version_names),
            request.next_token,
            max_results(request.max_results, request.HasField("max_results"), 100),
        )
        return pb.DescribeProjectVersionsResponse(
            project_version_descriptions=[description(row) for row in page.items],
            next_token=page.next_token or "",
        )

    def DeleteProjectVersion(
        self, request: pb.DeleteProjectVersionRequest, context: grpc.ServicerContext
    ) -> pb.DeleteProjectVersionResponse:
        """Deletes a version."""
        status = self.service.delete(request.project_version_arn)
        return pb.DeleteProjectVersionResponse(status=enums.from_aws(STATUS, status))  # type: ignore[arg-type]

    def CopyProjectVersion(
        self, request: pb.CopyProjectVersionRequest, context: grpc.ServicerContext
    ) -> pb.CopyProjectVersionResponse:
        """Copies a trained version into another project."""
        arn = self.service.copy(
            request.source_project_arn,
            request.source_project_version_arn,
            request.destination_project_arn,
            request.version_name,
            (request.output_config.s3_bucket, request.output_config.s3_key_prefix)
            if request.HasField("output_config")
            else None,
            dict(request.tags),
            request.kms_key_id or None,
        )
        return pb.CopyProjectVersionResponse(project_version_arn=arn)

    def ListTestResults(
        self, request: pb.ListTestResultsRequest, context: grpc.ServicerContext
    ) -> pb.ListTestResultsResponse:
        """Lists a trained version's test images with their outcomes, in manifest order."""
        page, total = self.service.list_test_results(
            request.project_version_arn,
            list(request.labels),
            enums.to_aws(OUTCOME, request.outcome),
            request.next_token,
            max_results(request.max_results, request.HasField("max_results"), 1000, default=100),
        )
        return pb.ListTestResultsResponse(
            test_results=[result_message(image) for image in page.items],
            next_token=page.next_token or "",
            total_count=total,
        )

    def GetProjectVersion(
        self, request: pb.GetProjectVersionRequest, context: grpc.ServicerContext
    ) -> pb.GetProjectVersionResponse:
        """Returns one version (internal)."""
        row = self.service.get(request.project_version_arn)
        return pb.GetProjectVersionResponse(
            project_arn=row.project_arn,
            version_name=row.version_name,
            project_version_description=description(row),
        )

    def CountProjectVersions(
        self, request: pb.CountProjectVersionsRequest, context: grpc.ServicerContext
    ) -> pb.CountProjectVersionsResponse:
        """Counts a project's versions (internal: DeleteProject)."""
        return pb.CountProjectVersionsResponse(version_count=self.service.count(request.project_arn))

    def GetModelArtifact(
        self, request: pb.GetModelArtifactRequest, context: grpc.ServicerContext
    ) -> pb.GetModelArtifactResponse:
        """Returns where a trained model is (internal: serving)."""
        row = self.service.artifact(request.project_version_arn)
        bucket = self.service.models_bucket
        return pb.GetModelArtifactResponse(
            project_version_arn=row.arn,
            model_type=enums.from_aws(MODEL_TYPE, row.model_type) if row.model_type else 0,  # type: ignore[arg-type]
            labels=row.labels or [],
            onnx_model=common.S3Object(bucket=bucket, name=row.files["onnx"]),
            model_metadata=common.S3Object(bucket=bucket, name=row.files.get("metadata", "")),
            feature=common.CUSTOMIZATION_FEATURE_CUSTOM_LABELS,
            status=enums.from_aws(STATUS, row.status),  # type: ignore[arg-type]
        )

    def UpdateVersionStatus(
        self, request: pb.UpdateVersionStatusRequest, context: grpc.ServicerContext
    ) -> pb.UpdateVersionStatusResponse:
        """Compare-and-set of the run state (internal: serving)."""
        units = None
        if request.HasField("min_inference_units"):
            units = (
                request.min_inference_units,
                request.max_inference_units if request.HasField("max_inference_units") else None,
            )
        previous, status = self.service.update_status(
            request.project_version_arn,
            enums.to_aws(STATUS, request.status) or "",
            request.status_message if request.status_message else None,
            [enums.to_aws(STATUS, s) or "" for s in request.expected_statuses],
            units,
        )
        return pb.UpdateVersionStatusResponse(
            previous_status=enums.from_aws(STATUS, previous),  # type: ignore[arg-type]
            status=enums.from_aws(STATUS, status),  # type: ignore[arg-type]
        )
