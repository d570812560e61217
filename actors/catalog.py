"""The operation catalog: the single table that routes every job.

The gateway validates and routes from it without importing any actor; the workers
declare their actors from it. Adding an operation is one entry here plus one module in
``actors/operations/``. This module imports nothing heavy: the gateway loads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType

QUEUES = ("heavy", "light")

_HGNC_ID = {"type": "string", "pattern": r"^HGNC:[0-9]+$"}


@dataclass(frozen=True)
class Operation:
    name: str
    queue: str
    description: str
    #: Dramatiq's TimeLimit: the job is interrupted after this many seconds.
    time_limit_seconds: int
    #: Retries after the first attempt, for failures worth retrying.
    max_retries: int
    #: Backoff between retries, grown exponentially by Dramatiq's Retries.
    min_backoff_ms: int
    max_backoff_ms: int
    #: What the client is told to expect (202 body, Retry-After hints).
    estimated_seconds: int
    #: JSON Schema of the parameters, checked at submit.
    params_schema: dict = field(default_factory=dict)
    #: A job submitted when this one completes: (operation, parameters); the new job
    #: also gets ``source_job_id``. As SysNDD does, clusterings are summarised by the LLM.
    follow_up: tuple[str, dict] | None = None
    #: Only when this environment variable is set on the worker (the LLM endpoint):
    #: without it the follow-up could only fail.
    follow_up_if_env: str | None = None

    @property
    def retry_after_seconds(self) -> int:
        """How long a client should wait between two status polls."""
        return max(1, min(30, self.estimated_seconds // 10))


def _object(properties: dict, **extra) -> dict:
    return {"type": "object", "properties": properties, "additionalProperties": False, **extra}


_OPERATIONS = [
    Operation(
        name="clustering",
        queue="heavy",
        description="Leiden (or walktrap) community detection on the NDD gene network.",
        time_limit_seconds=30 * 60,
        max_retries=1,
        min_backoff_ms=5_000,
        max_backoff_ms=60_000,
        estimated_seconds=60,
        params_schema=_object(
            {
                "algorithm": {"enum": ["leiden", "walktrap"], "default": "leiden"},
                "resolution": {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "default": 1.0},
                "seed": {"type": "integer", "minimum": 0, "default": 42},
                "min_cluster_size": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 10},
                "genes": {"type": "array", "items": _HGNC_ID, "maxItems": 20_000, "uniqueItems": True},
            }
        ),
        follow_up=("llm_generation", {"cluster_type": "functional"}),
        follow_up_if_env="LLM_BASE_URL",
    ),
    Operation(
        name="phenotype_clustering",
        queue="heavy",
        description="MCA + hierarchical clustering on principal components of the entity x phenotype matrix.",
        time_limit_seconds=30 * 60,
        max_retries=1,
        min_backoff_ms=5_000,
        max_backoff_ms=60_000,
        estimated_seconds=90,
        params_schema=_object(
            {
                "ncp": {"type": "integer", "minimum": 2, "maximum": 39, "default": 8},
                "min_clusters": {"type": "integer", "minimum": 2, "maximum": 50, "default": 3},
                "max_clusters": {"type": "integer", "minimum": 2, "maximum": 50, "default": 25},
            }
        ),
        follow_up=("llm_generation", {"cluster_type": "phenotype"}),
        follow_up_if_env="LLM_BASE_URL",
    ),
    Operation(
        name="llm_generation",
        queue="heavy",
        description="LLM summary per cluster of a finished clustering job, cached by cluster content.",
        time_limit_seconds=60 * 60,
        max_retries=3,
        min_backoff_ms=10_000,
        max_backoff_ms=300_000,
        estimated_seconds=300,
        params_schema=_object(
            {
                "source_job_id": {"type": "string", "minLength": 1, "maxLength": 64},
                "cluster_type": {"enum": ["functional", "phenotype"]},
                "force": {"type": "boolean", "default": False},
            },
            required=["source_job_id"],
        ),
    ),
    Operation(
        name="pubtator_update",
        queue="light",
        description="Pages through the PubTator3 search API and upserts publications and gene mentions.",
        time_limit_seconds=60 * 60,
        max_retries=3,
        min_backoff_ms=10_000,
        max_backoff_ms=300_000,
        estimated_seconds=600,
        params_schema=_object(
            {
                "query": {"type": "string", "minLength": 1, "maxLength": 1_000, "default": "neurodevelopmental disorder"},
                "max_pages": {"type": "integer", "minimum": 1, "maximum": 1_000, "default": 10},
            }
        ),
    ),
    Operation(
        name="comparisons_update",
        queue="light",
        description="Loads the external NDD gene lists and replaces the comparison table.",
        time_limit_seconds=15 * 60,
        max_retries=3,
        min_backoff_ms=10_000,
        max_backoff_ms=300_000,
        estimated_seconds=60,
        params_schema=_object(
            {
                # Remote lists only: a job must not make a worker read its own files.
                # (The shipped lists are the default; ``python -m actors.run`` reads local ones.)
                "sources": {
                    "type": "object",
                    "propertyNames": {"pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                    "additionalProperties": {"type": "string", "pattern": "^https?://", "maxLength": 2_000},
                    "minProperties": 1,
                    "maxProperties": 50,
                },
            }
        ),
    ),
    Operation(
        name="backup_create",
        queue="light",
        description="A compressed, checksummed, rotated snapshot of the application data store.",
        time_limit_seconds=30 * 60,
        max_retries=2,
        min_backoff_ms=10_000,
        max_backoff_ms=120_000,
        estimated_seconds=30,
        params_schema=_object({"keep": {"type": "integer", "minimum": 1, "maximum": 365, "default": 7}}),
    ),
    Operation(
        name="selftest",
        queue="light",
        description="Diagnostic job for tests and benchmarks: sleeps in steps, reports progress, fails if asked.",
        time_limit_seconds=15 * 60,
        max_retries=0,
        min_backoff_ms=1_000,
        max_backoff_ms=1_000,
        estimated_seconds=1,
        params_schema=_object(
            {
                "sleep_ms": {"type": "integer", "minimum": 0, "maximum": 600_000, "default": 0},
                "steps": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1},
                "fail": {"type": "boolean", "default": False},
                # Free text that tells otherwise identical jobs apart (benchmarks, tests).
                "label": {"type": "string", "maxLength": 200},
                # Fault injection: hold this much memory while sleeping (memory limits).
                "allocate_mb": {"type": "integer", "minimum": 0, "maximum": 65_536, "default": 0},
                # Fault injection: count each run to its end in Redis (duplicate runs).
                "count_runs": {"type": "boolean", "default": False},
            }
        ),
    ),
]

CATALOG: MappingProxyType[str, Operation] = MappingProxyType({op.name: op for op in _OPERATIONS})


def get(name: str) -> Operation | None:
    return CATALOG.get(name)


def operations_on(queue: str) -> list[Operation]:
    return [op for op in CATALOG.values() if op.queue == queue]


def with_defaults(operation: Operation, params: dict) -> dict:
    """Fill in the schema's top-level defaults, so that ``{}`` and the same
    parameters spelled out are one job for duplicate detection."""
    filled = dict(params)
    for name, spec in operation.params_schema.get("properties", {}).items():
        if name not in filled and "default" in spec:
            filled[name] = spec["default"]
    return filled


def canonical_params(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
