"""Assertions shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from services.common import db
from services.common.config import Config
from services.common.errors import aws_name_of


def expect_error(call: Callable[[], Any], code: grpc.StatusCode, aws_name: str) -> grpc.RpcError:
    """Runs `call`, asserts it fails with `code` and carries `aws_name` in ErrorInfo; returns the error."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    error = info.value
    assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"  # type: ignore[attr-defined]
    assert aws_name_of(error) == aws_name, f"expected {aws_name}, got {aws_name_of(error)}"
    return error


@contextmanager
def training_worker(services: Any, database_url: str, lease_s: int = 30) -> Iterator[None]:
    """One training worker, in-process, on `database_url` and the object store of `services`."""
    from services.training import app as training_app
    from services.training.worker import build_runner

    config = Config.from_env("training", {**services.env, "DATABASE_URL": database_url})
    pool = db.create_pool(database_url, training_app.SCHEMA, 1, 4)
    runner = build_runner(
        config,
        services.store,
        pool,
        {"CUSTOMLABELS_TRAINING_JOB_LEASE_S": str(lease_s), "CUSTOMLABELS_TRAINING_JOB_POLL_S": "0.2"},
    )
    runner.start()
    try:
        yield
    finally:
        runner.stop(timeout=60)
        pool.close()
