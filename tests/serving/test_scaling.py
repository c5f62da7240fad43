"""Auto-scaling between MinInferenceUnits and MaxInferenceUnits: the decision on real Triton statistics,
and one run where the instance count of a loaded model goes up and comes back down when idle."""

from __future__ import annotations

import threading
import time

import tritonclient.grpc as tgrpc
from customlabels.serving.v1 import serving_service_pb2 as sv
from customlabels.training.v1 import training_service_pb2 as tr

from scripts.inprocess import LocalServices
from services.serving import autoscale
from services.serving.triton import Statistics, model_name, statistics_of
from tests.serving.conftest import Trained, describe, ensure_stopped, installation, start, wait_status

THRESHOLDS = {"scale_up_queue_ms": 10.0, "scale_down_idle_s": 30.0}

# GetModelStatistics (as_json) of a classifier on one instance, read from the test Triton (2.41) 2.272 s
# apart while 8 clients called it (trimmed to the fields the decision reads).
BEFORE = {
    "model_stats": [
        {
            "name": "cl_ff95cb6549d403b2_shapes-c67bd25e8d.v1_1795649742548",
            "version": "1",
            "last_inference": "1795649764388",
            "inference_count": "1",
            "execution_count": "1",
            "inference_stats": {
                "success": {"count": "1", "ns": "185139441"},
                "queue": {"count": "1", "ns": "2817583"},
                "compute_infer": {"count": "1", "ns": "174480462"},
            },
            "batch_stats": [{"batch_size": "1", "compute_infer": {"count": "1", "ns": "174480462"}}],
        }
    ]
}
AFTER = {
    "model_stats": [
        {
            "name": "cl_ff95cb6549d403b2_shapes-c67bd25e8d.v1_1795649742548",
            "version": "1",
            "last_inference": "1795649766660",
            "inference_count": "18",
            "execution_count": "4",
            "inference_stats": {
                "success": {"count": "18", "ns": "17972252119"},
                "queue": {"count": "18", "ns": "2186929177"},
                "compute_infer": {"count": "18", "ns": "15557708938"},
            },
            "batch_stats": [
                {"batch_size": "1", "compute_infer": {"count": "1", "ns": "174480462"}},
                {"batch_size": "3", "compute_infer": {"count": "1", "ns": "289941122"}},
                {"batch_size": "6", "compute_infer": {"count": "1", "ns": "480265369"}},
                {"batch_size": "8", "compute_infer": {"count": "1", "ns": "1453976612"}},
            ],
        }
    ]
}
SECONDS = 2.272


def test_statistics_are_read_per_request_for_queues_and_per_execution_for_compute() -> None:
    before, after = statistics_of(BEFORE), statistics_of(AFTER)
    assert before == Statistics(requests=1, executions=1, queue_ns=2_817_583, infer_ns=174_480_462)
    # compute_infer of inference_stats charges a batch of 8 eight times (15.6 s in 2.3 s); batch_stats
    # count each execution once (2.4 s).
    assert after.infer_ns == 2_398_663_565
    load = autoscale.load_between(before, after, SECONDS, instances=1)
    assert load is not None
    assert load.requests == 17
    assert round(load.queue_ms, 1) == 128.5  # each request waited 128 ms for the busy instance
    assert round(load.busy, 2) == 0.98  # which computed 98 % of the time


def test_a_queue_past_the_threshold_adds_an_instance_up_to_max_and_the_quota() -> None:
    load = autoscale.load_between(statistics_of(BEFORE), statistics_of(AFTER), SECONDS, instances=1)
    assert load is not None
    assert autoscale.decide(1, 1, 3, load, 0.0, spare_units=5, **THRESHOLDS) == 2
    assert autoscale.decide(3, 1, 3, load, 0.0, spare_units=5, **THRESHOLDS) == 3  # at max
    assert autoscale.decide(1, 1, 3, load, 0.0, spare_units=0, **THRESHOLDS) == 1  # quota spent
    assert autoscale.decide(1, 1, 1, load, 0.0, spare_units=5, **THRESHOLDS) == 1  # no auto-scaling


def test_idle_models_go_back_to_min_and_light_load_sheds_an_instance() -> None:
    idle = autoscale.Load(requests=0, queue_ms=0.0, busy=0.0)
    assert autoscale.decide(3, 1, 4, idle, 10.0, spare_units=5, **THRESHOLDS) == 3  # not idle long enough
    assert autoscale.decide(3, 1, 4, idle, 31.0, spare_units=5, **THRESHOLDS) == 1
    light = autoscale.Load(requests=40, queue_ms=0.2, busy=0.2)  # 3 instances 20 % busy: 2 would do at 30 %
    assert autoscale.decide(3, 1, 4, light, 0.0, spare_units=5, **THRESHOLDS) == 2
    steady = autoscale.Load(requests=400, queue_ms=2.0, busy=0.6)
    assert autoscale.decide(2, 1, 4, steady, 0.0, spare_units=5, **THRESHOLDS) == 2


def test_counters_that_went_back_give_no_load() -> None:
    assert autoscale.load_between(statistics_of(AFTER), statistics_of(BEFORE), SECONDS, 1) is None


def _instances(triton_addr: str, name: str) -> int:
    client = tgrpc.InferenceServerClient(triton_addr)
    try:
        config = client.get_model_config(name).config
        return sum(group.count for group in config.instance_group)
    finally:
        client.close()


def test_a_loaded_model_scales_up_and_back_down_when_idle(
    cloud: LocalServices, classifier: Trained, triton_server: object
) -> None:
    arn = classifier.version_arn
    name = model_name(arn, installation(cloud.env["DATABASE_URL"]))
    addr = triton_server.grpc_addr  # type: ignore[attr-defined]
    ensure_stopped(cloud, arn)
    start(cloud, arn, units=1, max_units=2)
    try:
        wait_status(cloud, arn, {tr.PROJECT_VERSION_STATUS_RUNNING})
        assert _instances(addr, name) == 1
        assert describe(cloud, arn).max_inference_units == 2
        done = threading.Event()
        errors: list[BaseException] = []
        image = classifier.images[0].data
        request = sv.DetectCustomLabelsRequest(project_version_arn=arn, image=sv.Image(bytes=image))

        def client() -> None:
            while not done.is_set():
                try:
                    cloud.serving.DetectCustomLabels(request)  # type: ignore[union-attr]
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 90
            while _instances(addr, name) < 2:
                assert time.monotonic() < deadline, "never scaled up"
                time.sleep(0.25)
        finally:
            done.set()
            for thread in threads:
                thread.join()
        # Calls kept being answered while Triton swapped in the new instances.
        assert errors == []
        deadline = time.monotonic() + 90
        while _instances(addr, name) > 1:
            assert time.monotonic() < deadline, "never scaled back down"
            time.sleep(0.25)
    finally:
        ensure_stopped(cloud, arn)
