"""Job resources, following SysNDD's job API so its front end can poll us unchanged."""

from __future__ import annotations

import json

import falcon
from dramatiq.results import ResultMissing
from dramatiq_abort.middleware import AbortMode

from actors import catalog
from actors.broker import job_message
from actors.job_store import ACTIVE, COMPLETED, FAILED, STATUSES, parse_time
from actors.params import InvalidParams
from actors.submission import submit
from gateway.backend import Backend
from gateway.errors import ApiError

MAX_BODY_BYTES = 1024 * 1024


def status_url(job_id: str) -> str:
    return f"/api/jobs/{job_id}/status"


def _job_not_found(job_id: str) -> ApiError:
    return ApiError(falcon.HTTP_404, "JOB_NOT_FOUND", f"no job with id {job_id!r} (unknown or expired)")


def _record(backend: Backend, job_id: str) -> dict:
    record = backend.store.get(job_id)
    if record is None:
        raise _job_not_found(job_id)
    return record


# Read and drop up to this much of an oversized body, so a client's keep-alive
# connection stays usable after the 413; beyond it the server closes the connection.
DRAIN_BYTES = 8 * 1024 * 1024


def _too_large(req: falcon.Request) -> ApiError:
    drained = 0
    while drained < DRAIN_BYTES and (chunk := req.bounded_stream.read(64 * 1024)):
        drained += len(chunk)
    return ApiError(falcon.HTTP_413, "PAYLOAD_TOO_LARGE", f"the body is larger than {MAX_BODY_BYTES} bytes")


def _read_json_body(req: falcon.Request):
    if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
        raise _too_large(req)
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large(req)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(
            falcon.HTTP_400, "INVALID_PARAMS", "the body is not valid JSON",
            details=[{"field": "", "problem": str(e)[:200]}],
        )


class Submit:
    def __init__(self, backend: Backend):
        self.backend = backend

    def on_post(self, req, resp, ident):
        operation = catalog.get(ident)
        if operation is None:
            raise ApiError(
                falcon.HTTP_404, "UNKNOWN_OPERATION", f"no operation named {ident!r}",
                operations=sorted(catalog.CATALOG),
            )
        params = _read_json_body(req)
        try:
            admission = submit(self.backend.store, self.backend.broker, operation, params)
        except InvalidParams as e:
            raise ApiError(falcon.HTTP_400, "INVALID_PARAMS", e.message, details=e.details)

        if admission.outcome == "duplicate":
            raise ApiError(
                falcon.HTTP_409, "DUPLICATE_JOB",
                f"an identical {operation.name} job is already pending or running",
                existing_job_id=admission.job_id, status_url=status_url(admission.job_id),
            )
        if admission.outcome == "capacity":
            retry_after = max(5, min(300, operation.estimated_seconds))
            raise ApiError(
                falcon.HTTP_503, "CAPACITY_EXCEEDED",
                f"the {operation.queue} queue holds {admission.active} active jobs, its limit; try again later",
                retry_after=retry_after, headers={"Retry-After": str(retry_after)},
            )
        resp.status = falcon.HTTP_202
        resp.set_header("Location", status_url(admission.job_id))
        resp.set_header("Retry-After", str(operation.retry_after_seconds))
        resp.media = {
            "job_id": admission.job_id,
            "status": "accepted",
            "operation": operation.name,
            "queue": operation.queue,
            "estimated_seconds": operation.estimated_seconds,
            "status_url": status_url(admission.job_id),
        }


class Status:
    def __init__(self, backend: Backend):
        self.backend = backend

    def on_get(self, req, resp, ident):
        record = _record(self.backend, ident)
        body = {
            "job_id": record["job_id"],
            "operation": record["operation"],
            "queue": record["queue"],
            "status": record["status"],
            "submitted_at": record["submitted_at"],
            "started_at": record["started_at"],
            "completed_at": record["completed_at"],
            "step": record["progress"]["step"],
            "progress": record["progress"],
            "attempts": record["attempts"],
            "peak_memory_mb": record["peak_memory_mb"],
        }
        if record["follow_up_job_id"]:
            body["follow_up_job_id"] = record["follow_up_job_id"]
            body["follow_up_status_url"] = status_url(record["follow_up_job_id"])
        if record["status"] == COMPLETED:
            body["result"] = _result(self.backend, record)
        elif record["status"] == FAILED:
            body["error"] = record["error"]
        elif record["status"] in ACTIVE:
            retry_after = _retry_after(record)
            body["retry_after"] = retry_after
            resp.set_header("Retry-After", str(retry_after))
            if record["error"]:
                body["last_error"] = record["error"]
            if record["cancel_requested"]:
                body["cancel_requested"] = True
        resp.media = body


def _retry_after(record: dict) -> int:
    operation = catalog.get(record["operation"])
    return operation.retry_after_seconds if operation else 5


def _result(backend: Backend, record: dict):
    operation = catalog.get(record["operation"])
    message = job_message(operation, record["job_id"], {})
    try:
        return backend.results.get_result(message)
    except ResultMissing:
        return None


class Result:
    def __init__(self, backend: Backend):
        self.backend = backend

    def on_get(self, req, resp, ident):
        record = _record(self.backend, ident)
        if record["status"] in ACTIVE:
            raise ApiError(
                falcon.HTTP_409, "JOB_NOT_FINISHED", f"job {ident} is {record['status']}",
                status=record["status"], status_url=status_url(ident),
            )
        if record["status"] != COMPLETED:
            raise ApiError(
                falcon.HTTP_409, "JOB_NOT_COMPLETED", f"job {ident} ended {record['status']}: it has no result",
                status=record["status"], job_error=record["error"],
            )
        resp.media = _result(self.backend, record)


class Job:
    def __init__(self, backend: Backend):
        self.backend = backend

    def on_delete(self, req, resp, ident):
        outcome = self.backend.store.cancel(ident)
        if outcome == "missing":
            raise _job_not_found(ident)
        if outcome == "finished":
            record = self.backend.store.get(ident)
            raise ApiError(
                falcon.HTTP_409, "JOB_FINISHED", f"job {ident} has already ended",
                status=record["status"] if record else None,
            )
        if outcome == "running":
            # The worker running it raises Abort in the job's thread (dramatiq-abort).
            self.backend.aborts.abort(ident, mode=AbortMode.ABORT)
            resp.status = falcon.HTTP_202
            resp.media = {"job_id": ident, "status": "running", "cancel_requested": True, "status_url": status_url(ident)}
            return
        resp.media = {"job_id": ident, "status": "cancelled", "status_url": status_url(ident)}


class History:
    def __init__(self, backend: Backend):
        self.backend = backend

    def on_get(self, req, resp):
        limit = _int_param(req, "limit", default=20, low=1, high=100)
        status = req.get_param("status")
        if status is not None and status not in STATUSES:
            raise _bad_query("status", f"must be one of {', '.join(STATUSES)}")
        operation = req.get_param("operation")
        if operation is not None and operation not in catalog.CATALOG:
            raise _bad_query("operation", f"must be one of {', '.join(sorted(catalog.CATALOG))}")
        cursor = req.get_param("cursor")
        if cursor is not None and not cursor.isdigit():
            raise _bad_query("cursor", "must be a next_cursor value from a previous page")

        records, next_cursor = self.backend.store.history(
            limit=limit, status=status, operation=operation, cursor=int(cursor) if cursor else None,
        )
        resp.media = {
            "data": [_history_item(r) for r in records],
            "meta": {"count": len(records), "limit": limit, "next_cursor": str(next_cursor) if next_cursor else None},
        }


def _history_item(record: dict) -> dict:
    started, completed = parse_time(record["started_at"]), parse_time(record["completed_at"])
    return {
        "job_id": record["job_id"],
        "operation": record["operation"],
        "status": record["status"],
        "queue": record["queue"],
        "submitted_at": record["submitted_at"],
        "completed_at": record["completed_at"],
        "duration_seconds": round((completed - started).total_seconds(), 3) if started and completed else None,
        "error_message": record["error"]["message"] if record["error"] and record["status"] != COMPLETED else None,
    }


def _bad_query(field: str, problem: str) -> ApiError:
    return ApiError(falcon.HTTP_400, "INVALID_PARAMS", f"invalid query parameter {field!r}",
                    details=[{"field": field, "problem": problem}])


def _int_param(req, name: str, *, default: int, low: int, high: int) -> int:
    raw = req.get_param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_query(name, "must be an integer")
    if not low <= value <= high:
        raise _bad_query(name, f"must be between {low} and {high}")
    return value
