"""``llm_generation``: an LLM summary per cluster of a finished clustering job, cached by
cluster content. Needs an OpenAI-compatible endpoint (LLM_BASE_URL, LLM_MODEL,
LLM_API_KEY); without one the job fails with LLM_NOT_CONFIGURED, never with an invented
summary."""

from __future__ import annotations

from actors import catalog
from actors.analysis import llm_summary
from actors.broker import job_message, job_store, redis_client, result_backend
from actors.datastore.base import shared_engine
from actors.errors import JobError, TransientJobError
from actors.job_store import COMPLETED
from actors.progress import callback

SOURCE_OPERATIONS = ("clustering", "phenotype_clustering")


def _source_result(job_id: str):
    record = job_store(redis_client(decode=True)).get(job_id)
    if record is None:
        raise JobError(f"no job with id {job_id!r} (unknown or expired)", code="SOURCE_JOB_NOT_FOUND")
    if record["operation"] not in SOURCE_OPERATIONS:
        raise JobError(f"job {job_id} is a {record['operation']} job, not a clustering", code="INVALID_PARAMS")
    if record["status"] != COMPLETED:
        raise JobError(f"job {job_id} is {record['status']}, not completed", code="SOURCE_JOB_NOT_COMPLETED")
    message = job_message(catalog.get(record["operation"]), job_id, {})
    return result_backend().get_result(message)


def run(params: dict, *, source_result=None) -> dict:
    try:
        settings = llm_summary.LLMSettings.from_env()
        result = _source_result(params["source_job_id"]) if source_result is None else source_result
        cluster_type = params.get("cluster_type") or llm_summary.infer_cluster_type(result)
        clusters = llm_summary.clusters_from_result(cluster_type, result)
        summaries = llm_summary.summarise_clusters(
            shared_engine(), clusters, cluster_type=cluster_type, settings=settings,
            force=params["force"], progress=callback,
        )
    except llm_summary.LLMError as e:
        raise (TransientJobError if e.retryable else JobError)(e.message, code=e.code)
    except ValueError as e:
        raise JobError(str(e), code="INVALID_PARAMS")
    return {"source_job_id": params["source_job_id"], **summaries}
