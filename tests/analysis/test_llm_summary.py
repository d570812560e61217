"""summarise_clusters against a local HTTP server that speaks the chat-completions API.

The server answers each request with a summary built from the request itself, or
with what a test queued (429 with Retry-After, 503, 400, unusable content), and
records every request. Sleeps are injected, so retries and the rate limit are
observed without being waited for.
"""

from __future__ import annotations

import functools
import json
import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import select, update

from actors.analysis import llm_summary
from actors.analysis.llm_summary import (
    PROMPT_VERSION,
    LLMNotConfigured,
    LLMRequestRejected,
    LLMResponseInvalid,
    LLMSettings,
    LLMUnavailable,
    build_prompt,
    cluster_hash,
    clusters_from_result,
    infer_cluster_type,
    parse_summary,
    summarise_clusters,
)
from actors.analysis.network_clustering import cluster_network, load_network
from actors.analysis.pubtator import RateLimiter, RetryPolicy
from actors.datastore.llm_cache import LLMSummary
from tests.support import fake_apis

SYSNDD_SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "sysndd"
MODEL = "test-model"


def shared_json(name: str):
    return json.loads((SYSNDD_SAMPLES / name).read_text(encoding="utf-8"))


# --- a chat-completions server ----------------------------------------------------


def summary_for(prompt: str, call: int) -> dict:
    """A valid summary of the prompt's cluster type, naming something from the prompt."""
    if "## Functional gene cluster" in prompt:
        genes = re.search(r"^Genes: (.+)$", prompt, re.MULTILINE).group(1).split(", ")
        return {
            "summary": f"Genes {', '.join(genes[:3])} share a function (call {call}).",
            "key_themes": ["shared function"],
            "pathways": [],
            "tags": [gene.lower() for gene in genes[:3]],
            "clinical_relevance": "Intellectual disability.",
            "confidence": "Medium",
            "unrequested_key": "dropped",
        }
    first = re.search(r"^\| (?!Feature)(.+?) \| [+-]", prompt, re.MULTILINE).group(1)
    return {
        "summary": f"Defined by {first} (call {call}).",
        "key_phenotype_themes": [first],
        "notably_absent": [],
        "clinical_pattern": "syndromic malformations",
        "syndrome_hints": ["Multisystem malformation syndromes"],
        "inheritance_patterns": "AD",
        "syndromicity": "predominantly_syndromic",
        "tags": [first.lower()],
        "confidence": "high",
        "data_quality_note": "Strong signal.",
    }


class ChatServer:
    """POST /v1/chat/completions; ``queue`` holds (status, headers, body) answered first."""

    def __init__(self):
        self.requests: list[dict] = []
        self.queue: list[tuple[int, dict, object]] = []
        self.content_override: str | None = None
        self.http = fake_apis.LocalServer(self._handle)
        self.base_url = f"{self.http.url}/v1"

    def _handle(self, request):
        body = json.loads(request.body or b"{}")
        self.requests.append({"path": request.path, "headers": request.headers, "body": body})
        if request.path != "/v1/chat/completions":
            return 404, {}, {"error": {"message": "no such route"}}
        if self.queue:
            return self.queue.pop(0)
        prompt = body["messages"][-1]["content"]
        content = self.content_override or json.dumps(summary_for(prompt, len(self.requests)))
        return 200, {}, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 50},
        }


@pytest.fixture
def api():
    server = ChatServer()
    yield server
    server.http.close()


def settings_for(api, **overrides) -> LLMSettings:
    options = dict(
        base_url=api.base_url,
        model=MODEL,
        rate_limit_per_minute=0,
        timeout_seconds=10,
        retry=RetryPolicy(max_retries=3, backoff_base_seconds=1.0, backoff_max_seconds=8.0),
    )
    options.update(overrides)
    return LLMSettings(**options)


# --- databases: SQLite always, PostgreSQL when reachable ---------------------------






@pytest.fixture(scope="module")
def phenotype_clusters():
    return clusters_from_result("phenotype", shared_json("api_analysis_phenotype_clustering_GET.json"))


@pytest.fixture(scope="module")
def network_result():
    network = load_network()
    return cluster_network(network["nodes"], network["edges"], subcluster=False)


def run(engine, clusters, api, *, cluster_type="phenotype", **overrides):
    sleeps: list[float] = []
    progress: list[tuple] = []
    options = dict(
        cluster_type=cluster_type,
        settings=settings_for(api),
        sleep=sleeps.append,
        progress=lambda *args: progress.append(args),
    )
    options.update(overrides)
    return summarise_clusters(engine, clusters, **options), sleeps, progress


def stored_rows(engine) -> list:
    table = LLMSummary.__table__
    with engine.connect() as conn:
        return conn.execute(select(table).order_by(table.c.id)).all()


# --- generation and the cache -----------------------------------------------------


def test_summaries_are_generated_and_stored(engine, api, phenotype_clusters):
    result, sleeps, progress = run(engine, phenotype_clusters, api)

    assert (result["generated"], result["from_cache"], result["requests"]) == (5, 0, 5)
    assert result["cluster_type"] == "phenotype"
    assert (result["model"], result["prompt_version"]) == (MODEL, PROMPT_VERSION)
    assert [s["cluster_number"] for s in result["summaries"]] == [4, 3, 1, 2, 5]
    assert not any(s["cached"] for s in result["summaries"])
    assert sleeps == []

    first = result["summaries"][0]
    assert first["cluster_hash"] == cluster_hash("phenotype", phenotype_clusters[0])
    summary = first["summary_json"]
    assert summary["summary"].startswith("Defined by Abnormality of the genitourinary system")
    assert summary["inheritance_patterns"] == ["AD"]  # a lone string becomes a list
    assert summary["derived_confidence"] == {"score": "low", "avg_fdr": 0.0008971, "term_count": 34}

    request = api.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert "Authorization" not in request["headers"]
    body = request["body"]
    assert body["model"] == MODEL
    assert body["response_format"] == {"type": "json_object"}
    assert body["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == build_prompt("phenotype", phenotype_clusters[0])

    rows = stored_rows(engine)
    assert len(rows) == 5
    row = rows[0]
    assert (row.cluster_type, row.cluster_number, row.model_name, row.prompt_version) == (
        "phenotype",
        4,
        MODEL,
        PROMPT_VERSION,
    )
    assert row.cluster_hash == first["cluster_hash"] and len(row.cluster_hash) == 64
    assert json.loads(row.summary_json) == summary
    assert json.loads(row.tags) == summary["tags"]
    assert row.is_current and row.validation_status == "pending"
    assert row.created_at is not None and row.validated_at is None
    assert first["cache_id"] == row.id

    steps = [step for step, *_ in progress]
    assert steps[0] == "start" and steps[-1] == "done"
    assert {"lookup", "generate", "store"} <= set(steps)
    assert all(total == 5 for _, _, total, _ in progress)
    assert progress[-1][1] == 5


def test_functional_summaries_from_a_network_result(engine, api, network_result):
    clusters = clusters_from_result("functional", network_result)[-3:]  # the three smallest
    result, _, _ = run(engine, clusters, api, cluster_type="functional")

    assert result["generated"] == 3
    summary = result["summaries"][0]["summary_json"]
    assert summary["confidence"] == "medium"  # lower-cased
    assert "unrequested_key" not in summary
    assert summary["derived_confidence"] == {"score": "low", "avg_fdr": None, "term_count": 0}
    prompt = api.requests[0]["body"]["messages"][1]["content"]
    assert ", ".join(clusters[0]["genes"]) in prompt
    assert {row.cluster_type for row in stored_rows(engine)} == {"functional"}


def test_second_run_is_served_from_the_cache(engine, api, phenotype_clusters):
    first, _, _ = run(engine, phenotype_clusters, api)
    requests_before = len(api.requests)

    second, sleeps, progress = run(engine, phenotype_clusters, api)

    assert len(api.requests) == requests_before
    assert (second["generated"], second["from_cache"], second["requests"]) == (0, 5, 0)
    assert all(s["cached"] for s in second["summaries"])
    assert [s["summary_json"] for s in second["summaries"]] == [s["summary_json"] for s in first["summaries"]]
    assert [s["cache_id"] for s in second["summaries"]] == [s["cache_id"] for s in first["summaries"]]
    assert "generate" not in [step for step, *_ in progress]
    assert len(stored_rows(engine)) == 5


def test_force_regenerates_and_overwrites(engine, api, phenotype_clusters):
    first, _, _ = run(engine, phenotype_clusters[:2], api)
    table = LLMSummary.__table__
    with engine.begin() as conn:  # a curator had validated one
        conn.execute(update(table).values(validation_status="validated", validated_by="curator"))

    forced, _, _ = run(engine, phenotype_clusters[:2], api, force=True)

    assert (forced["generated"], forced["from_cache"], len(api.requests)) == (2, 0, 4)
    assert "(call 3)" in forced["summaries"][0]["summary_json"]["summary"]
    rows = stored_rows(engine)
    assert len(rows) == 2  # overwritten, not duplicated
    assert [row.id for row in rows] == [s["cache_id"] for s in first["summaries"]]
    assert "(call 3)" in json.loads(rows[0].summary_json)["summary"]
    assert {(row.validation_status, row.validated_by) for row in rows} == {("pending", None)}
    assert all(row.updated_at >= row.created_at for row in rows)


def test_cache_follows_content_not_number(engine, api, phenotype_clusters):
    cluster = phenotype_clusters[0]
    run(engine, [cluster], api)

    renumbered = {**cluster, "cluster_number": 9}
    result, _, _ = run(engine, [renumbered], api)
    assert result["summaries"][0]["cached"] and len(api.requests) == 1
    assert stored_rows(engine)[0].cluster_number == 9

    changed = {**cluster, "members": cluster["members"][1:]}
    result, _, _ = run(engine, [changed], api)
    assert not result["summaries"][0]["cached"] and len(api.requests) == 2


def test_is_current_marks_the_row_last_served_for_a_cluster_number(engine, api, phenotype_clusters):
    a, b = phenotype_clusters[0], phenotype_clusters[1]
    run(engine, [a], api)
    run(engine, [{**b, "cluster_number": a["cluster_number"]}], api)  # another content under number 4
    assert [row.is_current for row in stored_rows(engine)] == [False, True]

    run(engine, [a], api)  # the first content comes back: served from the cache, current again
    assert len(api.requests) == 2
    assert [row.is_current for row in stored_rows(engine)] == [True, False]


def test_a_rejected_summary_is_generated_again(engine, api, phenotype_clusters):
    run(engine, phenotype_clusters[:1], api)
    table = LLMSummary.__table__
    with engine.begin() as conn:
        conn.execute(update(table).values(validation_status="rejected"))

    result, _, _ = run(engine, phenotype_clusters[:1], api)

    assert not result["summaries"][0]["cached"] and len(api.requests) == 2
    assert stored_rows(engine)[0].validation_status == "pending"


# --- retries and the rate limit ---------------------------------------------------


def test_429_with_retry_after_then_success(engine, api, phenotype_clusters):
    api.queue.append((429, {"Retry-After": "7"}, {"error": {"message": "rate limited"}}))

    result, sleeps, progress = run(engine, phenotype_clusters[:1], api)

    assert sleeps == [7.0]
    assert (result["requests"], result["retries"], result["generated"]) == (2, 1, 1)
    waits = [message for step, _, _, message in progress if step == "wait"]
    assert waits == ["cluster 4: HTTP 429; retrying in 7.0 s"]


def test_503_is_retried_with_exponential_backoff(engine, api, phenotype_clusters):
    api.queue += [(503, {}, {"error": "overloaded"})] * 2

    result, sleeps, _ = run(engine, phenotype_clusters[:1], api)

    assert result["generated"] == 1 and result["retries"] == 2
    # Equal jitter: attempt n waits between half and all of base * 2**n.
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_503_that_outlives_the_retries_is_llm_unavailable(engine, api, phenotype_clusters):
    api.queue += [(503, {}, {"error": "down"})] * 10

    with pytest.raises(LLMUnavailable) as caught:
        run(engine, phenotype_clusters[:2], api)

    assert caught.value.code == "LLM_UNAVAILABLE" and caught.value.retryable
    assert "HTTP 503 after 4 attempts" in str(caught.value)
    assert len(api.requests) == 4
    assert stored_rows(engine) == []


def test_retry_after_too_long_fails_at_once(engine, api, phenotype_clusters):
    api.queue.append((429, {"Retry-After": "3600"}, {}))
    with pytest.raises(LLMUnavailable, match="retry after 3600 s"):
        run(engine, phenotype_clusters[:1], api)
    assert len(api.requests) == 1


def test_400_is_not_retried(engine, api, phenotype_clusters):
    api.queue.append((400, {}, {"error": {"message": "response_format is not supported"}}))

    with pytest.raises(LLMRequestRejected) as caught:
        run(engine, phenotype_clusters[:1], api)

    assert caught.value.status_code == 400 and caught.value.code == "LLM_REQUEST_REJECTED"
    assert "response_format is not supported" in str(caught.value)
    assert len(api.requests) == 1
    assert stored_rows(engine) == []


def test_wrong_base_url_says_what_to_check(engine, api, phenotype_clusters):
    settings = settings_for(api, base_url=api.base_url.removesuffix("/v1"))
    with pytest.raises(LLMRequestRejected, match="check LLM_BASE_URL and LLM_MODEL"):
        run(engine, phenotype_clusters[:1], api, settings=settings)


def test_connection_errors_are_retried(engine, phenotype_clusters):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = LLMSettings(
        base_url=f"http://127.0.0.1:{port}/v1",
        model=MODEL,
        rate_limit_per_minute=0,
        retry=RetryPolicy(max_retries=2, backoff_base_seconds=1.0, backoff_max_seconds=8.0),
    )
    sleeps: list[float] = []
    with pytest.raises(LLMUnavailable, match="ConnectionError"):
        summarise_clusters(
            engine, phenotype_clusters[:1], cluster_type="phenotype", settings=settings, sleep=sleeps.append
        )
    assert len(sleeps) == 2


class FakeClock:
    """A monotonic clock that only the injected sleep moves."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_requests_are_spaced_by_the_rate_limit(engine, api, phenotype_clusters, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(llm_summary, "RateLimiter", functools.partial(RateLimiter, clock=clock))

    result, _, _ = run(
        engine,
        phenotype_clusters[:3],
        api,
        settings=settings_for(api, rate_limit_per_minute=6),
        sleep=clock.sleep,
    )

    assert result["requests"] == 3
    assert clock.sleeps == [10.0, 10.0]  # 6 a minute: one request start every 10 s


# --- unusable answers ---------------------------------------------------------------


def test_content_that_is_not_json_is_llm_response_invalid(engine, api, phenotype_clusters):
    api.content_override = "Here is your summary: the cluster is about the kidney."

    with pytest.raises(LLMResponseInvalid) as caught:
        run(engine, phenotype_clusters[:1], api)

    assert caught.value.code == "LLM_RESPONSE_INVALID"
    assert "not JSON" in str(caught.value)
    assert len(api.requests) == 1  # not retried: the same prompt at temperature 0
    assert stored_rows(engine) == []


def test_a_body_that_is_not_a_chat_completion_is_llm_response_invalid(engine, api, phenotype_clusters):
    api.queue.append((200, {}, {"error": {"message": "quota exceeded"}}))
    with pytest.raises(LLMResponseInvalid, match="quota exceeded"):
        run(engine, phenotype_clusters[:1], api)


def test_summaries_made_before_a_failure_stay_stored(engine, api, phenotype_clusters):
    run(engine, phenotype_clusters[:2], api)
    api.content_override = "{}"
    with pytest.raises(LLMResponseInvalid):
        run(engine, phenotype_clusters[:3], api)
    assert len(stored_rows(engine)) == 2


def test_parse_summary_checks_keys_and_types():
    good = {
        "summary": " Mitochondrial genes. ",
        "key_themes": "oxidative phosphorylation",
        "tags": ["mitochondrion"],
        "confidence": "HIGH",
        "clinical_relevance": None,
    }
    assert parse_summary("functional", "```json\n" + json.dumps(good) + "\n```") == {
        "summary": "Mitochondrial genes.",
        "key_themes": ["oxidative phosphorylation"],
        "tags": ["mitochondrion"],
        "confidence": "high",
    }

    bad = {
        "summary": "",
        "tags": "x",
        "confidence": "very high",
        "key_phenotype_themes": [1],
        "syndromicity": "odd",
    }
    with pytest.raises(LLMResponseInvalid) as caught:
        parse_summary("phenotype", json.dumps(bad))
    message = str(caught.value)
    for problem in (
        "'summary' is missing",
        "'confidence' must be one of high, medium, low",
        "'key_phenotype_themes' must be a list",
        "'clinical_pattern' is missing",
        "'syndromicity' must be one of",
    ):
        assert problem in message
    with pytest.raises(LLMResponseInvalid, match="not an object"):
        parse_summary("functional", "[1, 2]")


# --- settings -----------------------------------------------------------------------


def test_not_configured_without_base_url_or_model():
    with pytest.raises(LLMNotConfigured) as caught:
        LLMSettings.from_env({})
    assert caught.value.code == "LLM_NOT_CONFIGURED" and not caught.value.retryable
    assert "LLM_BASE_URL and LLM_MODEL" in str(caught.value)

    with pytest.raises(LLMNotConfigured, match="set LLM_MODEL"):
        LLMSettings.from_env({"LLM_BASE_URL": "https://api.example.org/v1"})
    with pytest.raises(LLMNotConfigured, match="http"):
        LLMSettings.from_env({"LLM_BASE_URL": "api.example.org", "LLM_MODEL": "m"})
    with pytest.raises(LLMNotConfigured, match="LLM_RATE_LIMIT_PER_MINUTE must be a number"):
        LLMSettings.from_env(
            {"LLM_BASE_URL": "https://x.org", "LLM_MODEL": "m", "LLM_RATE_LIMIT_PER_MINUTE": "lots"}
        )


def test_settings_from_env():
    settings = LLMSettings.from_env(
        {
            "LLM_BASE_URL": "https://api.example.org/v1/",
            "LLM_MODEL": "gemini-3-flash-preview",
            "LLM_API_KEY": "sk-secret",
            "LLM_RATE_LIMIT_PER_MINUTE": "12",
            "LLM_TIMEOUT_SECONDS": "45",
        }
    )
    assert settings.base_url == "https://api.example.org/v1"
    assert (settings.model, settings.api_key) == ("gemini-3-flash-preview", "sk-secret")
    assert (settings.rate_limit_per_minute, settings.timeout_seconds) == (12.0, 45.0)
    assert "sk-secret" not in repr(settings)
    defaults = LLMSettings.from_env({"LLM_BASE_URL": "http://localhost:11434/v1", "LLM_MODEL": "m"})
    assert defaults.api_key is None and defaults.rate_limit_per_minute == 30


def test_not_configured_fails_before_any_request(engine, api, phenotype_clusters):
    with pytest.raises(LLMNotConfigured):
        summarise_clusters(engine, phenotype_clusters, cluster_type="phenotype", settings=None)
    assert api.requests == []


def test_api_key_is_sent_as_bearer(engine, api, phenotype_clusters):
    run(engine, phenotype_clusters[:1], api, settings=settings_for(api, api_key="sk-test-123"))
    assert api.requests[0]["headers"]["Authorization"] == "Bearer sk-test-123"


def test_progress_exception_cancels_before_the_request(engine, api, phenotype_clusters):
    def cancel(step, current, total, message=""):
        if step == "generate":
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        run(engine, phenotype_clusters, api, progress=cancel)
    assert api.requests == []


# --- cluster inputs and their hash --------------------------------------------------

SMALL_CLUSTER = {
    "cluster_number": 1,
    "size": 3,
    "members": ["HGNC:3", "HGNC:1", "HGNC:2"],
    "genes": ["AAA", "BBB", "CCC"],
}


def test_cluster_hash_is_pinned_stable_and_content_sensitive():
    digest = cluster_hash("functional", SMALL_CLUSTER)
    # Pinned: sha256 of {"cluster_type":"functional","genes":[...],"members":[sorted]}, canonical
    # JSON; changing what is hashed silently invalidates every cached summary.
    assert digest == "306c8b89901ed0fd7eb2a548d5b1ee5de05b1fcccd3a992e4b085efadef027b8"
    assert cluster_hash("functional", dict(SMALL_CLUSTER)) == digest
    assert cluster_hash("functional", {**SMALL_CLUSTER, "members": ["HGNC:1", "HGNC:2", "HGNC:3"]}) == digest
    assert cluster_hash("functional", {**SMALL_CLUSTER, "cluster_number": 7}) == digest

    assert cluster_hash("phenotype", SMALL_CLUSTER) != digest
    assert cluster_hash("functional", {**SMALL_CLUSTER, "members": ["HGNC:1", "HGNC:2", "HGNC:4"]}) != digest
    assert cluster_hash("functional", {**SMALL_CLUSTER, "genes": ["AAA", "BBB", "DDD"]}) != digest


def test_cluster_hash_follows_the_terms(phenotype_clusters):
    cluster = phenotype_clusters[0]
    digest = cluster_hash("phenotype", cluster)
    again = clusters_from_result("phenotype", shared_json("api_analysis_phenotype_clustering_GET.json"))[0]
    assert cluster_hash("phenotype", again) == digest

    term = cluster["enriched"][0]
    stronger = {**cluster, "enriched": [{**term, "v_test": term["v_test"] + 1}, *cluster["enriched"][1:]]}
    assert cluster_hash("phenotype", stronger) != digest
    assert len({cluster_hash("phenotype", c) for c in phenotype_clusters}) == 5


def test_clusters_from_a_phenotype_result(phenotype_clusters):
    reference = shared_json("api_analysis_phenotype_clustering_GET.json")
    cached = shared_json("api_llm_cache_summaries_GET.json")["data"]
    sysndd_confidence = {
        row["cluster_number"]: json.loads(row["summary_json"])["derived_confidence"]
        for row in cached
        if row["cluster_type"] == "phenotype"
    }

    assert infer_cluster_type(reference) == "phenotype"
    assert [c["cluster_number"] for c in phenotype_clusters] == [int(c["cluster"]) for c in reference]
    for cluster, source in zip(phenotype_clusters, reference, strict=True):
        assert cluster["size"] == source["cluster_size"] == len(cluster["members"])
        assert cluster["members"] == sorted(str(i["entity_id"]) for i in source["identifiers"])
        enriched = [t["v_test"] for t in cluster["enriched"]]
        depleted = [t["v_test"] for t in cluster["depleted"]]
        assert enriched == sorted(enriched, reverse=True) and all(v > 2 for v in enriched)
        assert depleted == sorted(depleted) and all(v < -2 for v in depleted)
        assert 0 < len(enriched) <= 15 and len(depleted) <= 15
        strongest = max(source["quali_inp_var"], key=lambda row: row["v.test"])
        assert cluster["enriched"][0]["term"] == strongest["variable"]
        # The data-derived confidence reproduces SysNDD's cached values.
        ours, theirs = cluster["derived_confidence"], sysndd_confidence[cluster["cluster_number"]]
        assert (ours["score"], ours["term_count"]) == (theirs["score"], theirs["term_count"])
        assert round(ours["avg_fdr"], 4) == theirs["avg_fdr"]

    cluster_4 = phenotype_clusters[0]
    assert [t["term"] for t in cluster_4["inheritance"]] == [
        "Autosomal dominant inheritance",
        "Autosomal recessive inheritance",
    ]
    assert {row["variable"] for row in cluster_4["feature_counts"]} == {
        "phenotype_id_count",
        "phenotype_non_id_count",
    }
    prompt = build_prompt("phenotype", cluster_4)
    assert "| Abnormality of the genitourinary system | +19.80 |" in prompt
    assert "| Seizures | -11.22 |" in prompt
    assert "cluster 4" not in prompt.lower()  # the number is not hashed, so not shown


def test_clusters_from_a_network_result(network_result):
    clusters = clusters_from_result("functional", network_result)

    assert infer_cluster_type(network_result) == "functional"
    assert [c["cluster_number"] for c in clusters] == [int(c["cluster"]) for c in network_result["clusters"]]
    for cluster, source in zip(clusters, network_result["clusters"], strict=True):
        assert cluster["size"] == source["size"] == len(cluster["members"])
        assert cluster["members"] == sorted(g["hgnc_id"] for g in source["genes"])
        assert cluster["genes"] == sorted(g["symbol"] or g["hgnc_id"] for g in source["genes"])
    assert len({cluster_hash("functional", c) for c in clusters}) == len(clusters)
    # Wrapped once (as a job record might hold it) reads the same.
    assert clusters_from_result("functional", {"result": network_result}) == clusters


def test_clusters_from_result_rejects_other_shapes(network_result):
    with pytest.raises(ValueError, match="quali_inp_var"):
        clusters_from_result("phenotype", network_result)
    with pytest.raises(ValueError, match="'genes'"):
        clusters_from_result("functional", shared_json("api_analysis_phenotype_clustering_GET.json"))
    with pytest.raises(ValueError, match="cluster_type"):
        clusters_from_result("pathway", network_result)
    with pytest.raises(ValueError, match="clusters"):
        clusters_from_result("functional", {"nodes": []})
    with pytest.raises(ValueError, match="whole number"):
        clusters_from_result(
            "functional", {"clusters": [{"cluster": "1.2", "genes": [{"hgnc_id": "HGNC:1"}]}]}
        )


def test_empty_cluster_list_makes_no_request(engine, api):
    result, _, progress = run(engine, [], api)
    assert result["summaries"] == [] and api.requests == []
    assert [step for step, *_ in progress] == ["start", "done"]
