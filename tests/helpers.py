"""Assertions shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from scripts.inprocess import training_worker
from services.common.errors import aws_name_of

__all__ = ["expect_error", "training_worker"]


def expect_error(call: Callable[[], Any], code: grpc.StatusCode, aws_name: str) -> grpc.RpcError:
    """Runs `call`, asserts it fails with `code` and carries `aws_name` in ErrorInfo; returns the error."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    error = info.value
    assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"  # type: ignore[attr-defined]
    assert aws_name_of(error) == aws_name, f"expected {aws_name}, got {aws_name_of(error)}"
    return error
