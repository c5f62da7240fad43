"""Server interceptors: request id, one JSON log line per call, and error mapping.

A `ServiceError` becomes a `google.rpc.Status` with `ErrorInfo(reason=<AWS name>)`; anything
unexpected is logged with its traceback and the request id, and the caller only sees INTERNAL
with AWS's `InternalServerError`, never internals.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from services.common import errors, logs

log = logging.getLogger("customlabels.rpc")

REQUEST_ID_KEY = "x-request-id"


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


def _aborted_by_handler(exc: BaseException) -> bool:
    # grpc's context.abort() ends the handler with a bare Exception(); its status is already set.
    return type(exc) is Exception and not exc.args


def _abort(context: grpc.ServicerContext, method: str, exc: BaseException) -> None:
    if _aborted_by_handler(exc):
        raise exc
    if isinstance(exc, NotImplementedError):
        # The generated base servicer: an operation whose issue has not landed yet.
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
    if isinstance(exc, errors.ServiceError):
        error = exc
    else:
        log.error("unhandled error in %s", method, exc_info=exc)
        error = errors.InternalServerError("internal error; retry later or report the request id")
    context.abort_with_status(error.to_status())


class ServiceInterceptor(grpc.ServerInterceptor):
    """Sets the request id, logs each call once and maps errors to rich statuses."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        # Health and reflection stay quiet: probes would drown the log.
        if method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler

        def begin(context: grpc.ServicerContext) -> tuple[contextvars.Token[str], float]:
            rid = _request_id(context)
            context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
            return logs.request_id.set(rid), time.perf_counter()

        def finish(token: contextvars.Token[str], start: float, code: str) -> None:
            log.info(
                "rpc",
                extra={"method": method, "code": code, "ms": round((time.perf_counter() - start) * 1000, 2)},
            )
            logs.request_id.reset(token)

        def code_of(exc: BaseException) -> str:
            if isinstance(exc, errors.ServiceError):
                return exc.code.name
            if isinstance(exc, NotImplementedError):
                return "UNIMPLEMENTED"
            return "INTERNAL"

        def wrap_unary(behaviour: Callable[..., Any]) -> Callable[..., Any]:
            def call(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
                token, start = begin(context)
                try:
                    response = behaviour(request_or_iterator, context)
                except Exception as exc:  # noqa: BLE001 - every failure must be mapped
                    finish(token, start, code_of(exc))
                    _abort(context, method, exc)
                    raise  # unreachable: abort raises
                finish(token, start, "OK")
                return response

            return call

        def wrap_stream(behaviour: Callable[..., Any]) -> Callable[..., Any]:
            def call(request_or_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                token, start = begin(context)
                try:
                    yield from behaviour(request_or_iterator, context)
                except Exception as exc:  # noqa: BLE001
                    finish(token, start, code_of(exc))
                    _abort(context, method, exc)
                    raise
                finish(token, start, "OK")

            return call

        if handler.unary_unary:
            return handler._replace(unary_unary=wrap_unary(handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=wrap_unary(handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=wrap_stream(handler.unary_stream))
        if handler.stream_stream:
            return handler._replace(stream_stream=wrap_stream(handler.stream_stream))
        return handler
