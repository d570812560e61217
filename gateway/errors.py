"""Every failure a client sees is JSON ``{error: CODE, message, ...}``: never a traceback."""

from __future__ import annotations

import logging

import falcon
import redis

log = logging.getLogger(__name__)


class ApiError(falcon.HTTPError):
    def __init__(self, http_status: str, code: str, message: str, *, headers: dict | None = None, **extra):
        super().__init__(http_status, headers=headers)
        self.body = {"error": code, "message": message, **extra}

    def to_dict(self, obj_type=dict):
        return obj_type(self.body)


# Falcon's own errors (unknown route, wrong method, ...) keep their status and get a code.
_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    411: "LENGTH_REQUIRED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def serialize_error(req, resp, exception: falcon.HTTPError) -> None:
    if isinstance(exception, ApiError):
        body = exception.body
    else:
        status = exception.status_code
        body = {
            "error": _CODES.get(status, "HTTP_ERROR"),
            "message": exception.description or exception.title or "request failed",
        }
    resp.media = body
    resp.content_type = falcon.MEDIA_JSON


def backend_unavailable(req, resp, ex, params):
    log.warning("Redis unavailable while serving %s %s: %s", req.method, req.path, ex)
    raise ApiError(
        falcon.HTTP_503, "BACKEND_UNAVAILABLE", "the job backend (Redis) is unreachable; try again shortly",
        headers={"Retry-After": "5"},
    )


def unexpected(req, resp, ex, params):
    if isinstance(ex, falcon.HTTPError):
        raise ex
    log.exception("Unhandled error while serving %s %s", req.method, req.path)
    raise ApiError(falcon.HTTP_500, "INTERNAL_ERROR", "the gateway failed to handle this request")


def install(app: falcon.App) -> None:
    app.set_error_serializer(serialize_error)
    # Falcon picks the most specific handler, whatever the order of registration.
    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(redis.ConnectionError, backend_unavailable)
    app.add_error_handler(redis.TimeoutError, backend_unavailable)
