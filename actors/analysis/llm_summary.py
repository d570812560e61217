"""LLM summaries of the clusters of a clustering result, cached by cluster content.

SysNDD (api/functions/llm-*.R) asks Gemini for a structured summary of each
functional (gene-network) and phenotype cluster and keeps it in a cache table keyed
by a hash of the cluster. This module does the same against any OpenAI-compatible
``POST {base_url}/chat/completions`` endpoint (OpenAI, Gemini's OpenAI endpoint,
vLLM, Ollama, LiteLLM, ...), in JSON mode at temperature 0:

* ``clusters_from_result`` turns a ``clustering`` or ``phenotype_clustering`` result
  into one plain dict per cluster: what the prompt shows, and nothing else but the
  member ids and SysNDD's data-derived confidence.
* ``cluster_hash`` is the sha256 of that content without the cluster's number, so a
  cluster that comes back unchanged under another number is served from the cache,
  and any change to its members or terms asks the model again.
* ``summarise_clusters`` looks each cluster up in ``llm_summaries`` (unless forced),
  asks the model for the others, validates the answer's keys and stores it. Every
  summary is committed as soon as it is made, so a run that fails on cluster 5
  resumes from the cache at cluster 5.

Differences from SysNDD: there is no second "LLM as judge" pass (no
``llm_judge_verdict``); new rows are ``validation_status = "pending"`` for a curator.
Functional clusters come without enrichment terms (the network clustering computes
none), so the prompt lists the gene symbols and their ``derived_confidence`` is
SysNDD's no-data value (score "low", term_count 0).

No summary is ever made up: without LLM_BASE_URL and LLM_MODEL the run fails with
LLMNotConfigured, and an answer that is not the expected JSON fails with
LLMResponseInvalid.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlparse

import requests
from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection, Engine

from actors.analysis.http_retry import RateLimiter, Rejected, RetryingSender, RetryPolicy, Unavailable
from actors.analysis.pubtator import upsert
from actors.datastore.llm_cache import LLMSummary

Progress = Callable[..., None]

CLUSTER_TYPES = ("functional", "phenotype")
CONFIDENCE_LEVELS = ("high", "medium", "low")
SYNDROMICITY_LEVELS = ("predominantly_syndromic", "predominantly_id", "mixed", "unknown")
PROGRESS_STEPS = ("start", "lookup", "generate", "wait", "store", "done")
USER_AGENT = "sysndd-jobs (llm_generation)"

# What a phenotype cluster's prompt shows: SysNDD's |v.test| > 2 cut, the strongest
# terms of each direction first. Fifteen per side covers every term of the reference
# clusters' depleted side and the informative part of the enriched one.
MIN_ABS_V_TEST = 2.0
TOP_TERMS_PER_DIRECTION = 15
# A cluster of the full network has up to ~350 genes; past this the symbol list costs
# more tokens than it adds.
MAX_GENES_IN_PROMPT = 400


# --- errors -----------------------------------------------------------------------


class LLMError(Exception):
    """Base of this module's failures; ``code`` is the job error code to report."""

    code = "LLM_ERROR"
    #: Whether running the job again later may succeed without anyone changing anything.
    retryable = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class LLMNotConfigured(LLMError):
    """LLM_BASE_URL / LLM_MODEL missing or a setting unusable."""

    code = "LLM_NOT_CONFIGURED"


class LLMUnavailable(LLMError):
    """429, 5xx or network failures that outlived the retries, or a Retry-After too long to wait."""

    code = "LLM_UNAVAILABLE"
    retryable = True


class LLMRequestRejected(LLMError):
    """A 4xx other than 408/429: bad key, unknown model, request the server refuses."""

    code = "LLM_REQUEST_REJECTED"

    def __init__(self, status_code: int, url: str, body: str = ""):
        hint = {
            401: " (check LLM_API_KEY)",
            403: " (check LLM_API_KEY and the model's access)",
            404: " (check LLM_BASE_URL and LLM_MODEL)",
        }.get(status_code, "")
        super().__init__(f"the LLM endpoint answered HTTP {status_code} for {url}{hint}: {body[:300]}")
        self.status_code = status_code


class LLMResponseInvalid(LLMError):
    """A 2xx answer that is not a chat completion holding the expected JSON object."""

    code = "LLM_RESPONSE_INVALID"


# --- settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class LLMSettings:
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    #: Requests started per minute by one run; 0 disables the limit (local servers, tests).
    rate_limit_per_minute: float = 30.0
    timeout_seconds: float = 120.0
    retry: RetryPolicy = RetryPolicy(max_retries=5, backoff_base_seconds=2.0, backoff_max_seconds=60.0)

    def __post_init__(self):
        if not self.base_url or not self.model:
            named = (("LLM_BASE_URL", self.base_url), ("LLM_MODEL", self.model))
            missing = [name for name, value in named if not value]
            raise LLMNotConfigured(
                f"LLM summaries are not configured: set {' and '.join(missing)} "
                "(an OpenAI-compatible endpoint such as https://api.openai.com/v1 and a model name)"
            )
        url = urlparse(self.base_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise LLMNotConfigured(f"LLM_BASE_URL must be an http(s) URL, got {self.base_url!r}")
        for name, value in (
            ("LLM_RATE_LIMIT_PER_MINUTE", self.rate_limit_per_minute),
            ("LLM_TIMEOUT_SECONDS", self.timeout_seconds),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise LLMNotConfigured(f"{name} must be a number >= 0, got {value!r}")
        if self.timeout_seconds == 0:
            raise LLMNotConfigured("LLM_TIMEOUT_SECONDS must be greater than 0")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LLMSettings:
        """LLM_BASE_URL, LLM_MODEL, LLM_API_KEY, LLM_RATE_LIMIT_PER_MINUTE, LLM_TIMEOUT_SECONDS."""
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = (env.get(name) or "").strip()
            if not raw:
                return default
            try:
                return float(raw)
            except ValueError:
                raise LLMNotConfigured(f"{name} must be a number, got {raw!r}") from None

        return cls(
            base_url=(env.get("LLM_BASE_URL") or "").strip(),
            model=(env.get("LLM_MODEL") or "").strip(),
            api_key=(env.get("LLM_API_KEY") or "").strip() or None,
            rate_limit_per_minute=number("LLM_RATE_LIMIT_PER_MINUTE", cls.rate_limit_per_minute),
            timeout_seconds=number("LLM_TIMEOUT_SECONDS", cls.timeout_seconds),
        )


# --- cluster inputs ---------------------------------------------------------------


def infer_cluster_type(result) -> str:
    """The cluster type ("phenotype" or "functional") a clustering result's shape implies."""
    clusters = _result_clusters(result)
    if clusters and all(isinstance(c, dict) and "quali_inp_var" in c for c in clusters):
        return "phenotype"
    if clusters and all(isinstance(c, dict) and "genes" in c for c in clusters):
        return "functional"
    raise ValueError(
        "cannot tell the cluster type: expected clusters with 'genes' (clustering) "
        "or 'quali_inp_var' (phenotype_clustering)"
    )


def clusters_from_result(cluster_type: str, result) -> list[dict]:
    """The per-cluster prompt inputs of a clustering job result, in cluster order.

    ``result`` is a ``clustering`` result (``{"clusters": [{cluster, size, genes:
    [{hgnc_id, symbol}], subclusters}]}``) for "functional", or a
    ``phenotype_clustering`` result (or SysNDD's bare list of its clusters) for
    "phenotype". Each cluster becomes::

        functional: {"cluster_number", "size", "members": [hgnc_id], "genes": [symbol],
                     "derived_confidence"}
        phenotype:  {"cluster_number", "size", "members": [entity_id as str],
                     "enriched": [term], "depleted": [term], "inheritance": [term],
                     "feature_counts": [{variable, v_test, p_value, mean_in_cluster,
                     mean_overall}], "derived_confidence"}

    where a term is ``{term, v_test, p_value, in_cluster_pct, overall_pct}``;
    ``enriched`` holds the TOP_TERMS_PER_DIRECTION highest v.test above MIN_ABS_V_TEST,
    ``depleted`` the lowest below -MIN_ABS_V_TEST. Sub-clusters are not summarised
    (SysNDD does not either). Numbers are rounded so the hash does not depend on the
    last bits of a float.
    """
    _check_cluster_type(cluster_type)
    clusters = _result_clusters(result)
    convert = _functional_cluster if cluster_type == "functional" else _phenotype_cluster
    inputs = []
    for position, cluster in enumerate(clusters, start=1):
        if not isinstance(cluster, dict):
            raise ValueError(f"cluster {position} is not an object: {cluster!r}")
        inputs.append(convert(cluster, _cluster_number(cluster, position)))
    numbers = [cluster["cluster_number"] for cluster in inputs]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"cluster numbers repeat: {numbers}")
    return inputs


def cluster_hash(cluster_type: str, cluster: Mapping) -> str:
    """sha256 hex of a cluster's content: its type, sorted member ids and everything
    the prompt shows (genes or terms), but not its number or size.

    Canonical JSON (sorted keys, no spaces) so the hash is stable across runs and
    Python versions. Changing what goes in invalidates every cached summary, so
    tests pin one value.
    """
    _check_cluster_type(cluster_type)
    members = cluster.get("members")
    if not members:
        raise ValueError(f"cluster {cluster.get('cluster_number')!r} has no members to hash")
    content = {
        key: value for key, value in cluster.items() if key not in ("cluster_number", "size", "members")
    }
    content["cluster_type"] = cluster_type
    content["members"] = sorted(str(member) for member in members)
    canonical = json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def derived_confidence(terms: Iterable[Mapping]) -> dict:
    """SysNDD's data-derived confidence of a phenotype cluster (calculate_derived_confidence).

    Over the terms with p < 0.05 and |v.test| > 2: high if their mean p-value is below
    1e-10 and more than 10 have |v.test| > 5; medium if the mean is below 1e-5 and
    there are more than 5; low otherwise. The mean p-value is reported as ``avg_fdr``,
    SysNDD's key.
    """
    significant = [term for term in terms if term["p_value"] < 0.05 and abs(term["v_test"]) > MIN_ABS_V_TEST]
    if not significant:
        return {"score": "low", "avg_fdr": None, "term_count": 0}
    average = sum(term["p_value"] for term in significant) / len(significant)
    strong = sum(1 for term in significant if abs(term["v_test"]) > 5)
    if average < 1e-10 and strong > 10:
        score = "high"
    elif average < 1e-5 and len(significant) > 5:
        score = "medium"
    else:
        score = "low"
    return {"score": score, "avg_fdr": float(f"{average:.4g}"), "term_count": len(significant)}


def _check_cluster_type(cluster_type: str) -> None:
    if cluster_type not in CLUSTER_TYPES:
        raise ValueError(f"cluster_type must be one of {', '.join(CLUSTER_TYPES)}, got {cluster_type!r}")


def _result_clusters(result) -> list:
    # A job result as stored, SysNDD's bare cluster list, or a result wrapped once.
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        if isinstance(result.get("clusters"), list):
            return result["clusters"]
        if isinstance(result.get("result"), dict):
            return _result_clusters(result["result"])
    raise ValueError("expected a clustering result: an object with a 'clusters' list")


def _cluster_number(cluster: dict, position: int) -> int:
    raw = cluster.get("cluster")
    try:
        number = int(str(raw).strip())
    except (TypeError, ValueError):
        raise ValueError(f"cluster {position}: 'cluster' must be a whole number, got {raw!r}") from None
    if number < 0:
        raise ValueError(f"cluster {position}: 'cluster' must not be negative, got {raw!r}")
    return number


def _functional_cluster(cluster: dict, number: int) -> dict:
    genes = cluster.get("genes")
    if not isinstance(genes, list) or not genes:
        raise ValueError(f"functional cluster {number} has no 'genes' list (is this a phenotype result?)")
    ids, symbols = [], []
    for gene in genes:
        hgnc_id = gene.get("hgnc_id") if isinstance(gene, dict) else None
        if not isinstance(hgnc_id, str) or not hgnc_id:
            raise ValueError(f"functional cluster {number}: every gene needs an hgnc_id, got {gene!r}")
        ids.append(hgnc_id)
        # A network built from a bare edge list has no symbols; the id is the next best name.
        symbols.append(gene.get("symbol") or hgnc_id)
    return {
        "cluster_number": number,
        "size": len(ids),
        "members": sorted(ids),
        "genes": sorted(symbols),
        "derived_confidence": derived_confidence([]),
    }


def _phenotype_cluster(cluster: dict, number: int) -> dict:
    rows = cluster.get("quali_inp_var")
    if not isinstance(rows, list):
        raise ValueError(
            f"phenotype cluster {number} has no 'quali_inp_var' list (is this a network result?)"
        )
    identifiers = cluster.get("identifiers") or []
    members = []
    for identifier in identifiers:
        member = (
            identifier.get("entity_id", identifier.get("hgnc_id")) if isinstance(identifier, dict) else None
        )
        if member is None:
            raise ValueError(f"phenotype cluster {number}: identifier without entity_id: {identifier!r}")
        members.append(str(member))
    if not members:
        raise ValueError(f"phenotype cluster {number} has no identifiers")

    terms = [_term(row, number, "quali_inp_var") for row in rows]
    enriched = sorted(
        (t for t in terms if t["v_test"] > MIN_ABS_V_TEST), key=lambda t: (-t["v_test"], t["term"])
    )
    depleted = sorted(
        (t for t in terms if t["v_test"] < -MIN_ABS_V_TEST), key=lambda t: (t["v_test"], t["term"])
    )
    inheritance = sorted(
        (
            t
            for t in (_term(row, number, "quali_sup_var") for row in cluster.get("quali_sup_var") or [])
            if abs(t["v_test"]) > MIN_ABS_V_TEST
        ),
        key=lambda t: (-t["v_test"], t["term"]),
    )
    feature_counts = sorted(
        (_feature_count(row, number) for row in cluster.get("quanti_sup_var") or []),
        key=lambda row: row["variable"],
    )
    return {
        "cluster_number": number,
        "size": len(members),
        "members": sorted(members),
        "enriched": enriched[:TOP_TERMS_PER_DIRECTION],
        "depleted": depleted[:TOP_TERMS_PER_DIRECTION],
        "inheritance": inheritance,
        "feature_counts": feature_counts,
        "derived_confidence": derived_confidence(terms),
    }


def _number(row: dict, key: str, where: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _term(row: dict, number: int, table: str) -> dict:
    where = f"phenotype cluster {number}, {table} row {row.get('variable')!r}"
    if not isinstance(row, dict) or not isinstance(row.get("variable"), str):
        raise ValueError(f"{where}: needs a 'variable' name")
    return {
        "term": row["variable"],
        "v_test": round(_number(row, "v.test", where), 4),
        "p_value": float(f"{_number(row, 'p.value', where):.4g}"),
        "in_cluster_pct": round(_number(row, "Mod.Cla", where), 2),
        "overall_pct": round(_number(row, "Global", where), 2),
    }


def _feature_count(row: dict, number: int) -> dict:
    where = f"phenotype cluster {number}, quanti_sup_var row {row.get('variable')!r}"
    return {
        "variable": str(row.get("variable")),
        "v_test": round(_number(row, "v.test", where), 4),
        "p_value": float(f"{_number(row, 'p.value', where):.4g}"),
        "mean_in_cluster": round(_number(row, "Mean.in.category", where), 3),
        "mean_overall": round(_number(row, "Overall.mean", where), 3),
    }


# --- prompts ----------------------------------------------------------------------

#: Bump with any change to the prompt texts or to what clusters_from_result puts in
#: them: the cache is keyed by (cluster_hash, model, PROMPT_VERSION). SysNDD's own R
#: prompts are "1.0"; these differ, so their summaries must never pass for ours.
PROMPT_VERSION = "2.0"

SYSTEM_PROMPT = (
    "You are a clinical geneticist curating SysNDD, a database of genes and diseases in "
    "neurodevelopmental disorders (NDD). You summarise clusters for clinical researchers and "
    "database curators. Answer with a single JSON object and nothing else."
)

FUNCTIONAL_PROMPT = """\
## Functional gene cluster
These {size} NDD genes form one community of the STRING protein-interaction network \
(Leiden clustering of high-confidence interactions).
No enrichment analysis is given: describe what these genes are known to share, and lower \
your confidence where the shared function is unclear.

Genes: {genes}

## Answer
A JSON object with these keys:
- "summary": 2-3 sentences on the biological function these genes share and its relevance \
to neurodevelopmental disorders.
- "key_themes": 3-5 short biological themes that characterise the cluster.
- "pathways": up to 8 established pathway names (KEGG or Reactome) that several of these \
genes belong to; an empty list if none stands out.
- "tags": 3-7 short lowercase search keywords (for example "mitochondrial", "synaptic", \
"chromatin").
- "clinical_relevance": one sentence on the NDD phenotypes these genes are associated with.
- "confidence": "high", "medium" or "low"; "high" only if most listed genes clearly share \
the function you describe.
Name no gene that is not in the list."""

PHENOTYPE_PROMPT = """\
## Phenotype cluster
These {size} NDD disease entities (gene-disease pairs) share a pattern of curated clinical \
features (multiple correspondence analysis and hierarchical clustering of HPO terms). \
A positive v.test means a feature is more frequent in this cluster than in the whole \
database; a negative one means it is rarer.

### Enriched features
{enriched}

### Depleted features
{depleted}

### Inheritance (supplementary: not used to form the clusters)
{inheritance}

### Features per entity (supplementary)
{feature_counts}

## Answer
A JSON object with these keys:
- "summary": 2-3 sentences on the clinical pattern: what is enriched and what is depleted.
- "key_phenotype_themes": 3-5 themes built from the enriched features.
- "notably_absent": 2-5 depleted features, named as listed; an empty list if none is listed.
- "clinical_pattern": a short syndrome category, for example "syndromic malformations", \
"pure neurodevelopmental", "progressive metabolic/degenerative", "overgrowth syndromes".
- "syndrome_hints": up to 3 recognised syndrome groups this pattern suggests.
- "inheritance_patterns": the enriched inheritance modes as abbreviations (AD, AR, XLD, XLR, \
XL, MT); an empty list if none is enriched.
- "syndromicity": "predominantly_syndromic" (more non-ID features than usual), \
"predominantly_id" (more intellectual-disability features), "mixed" or "unknown".
- "tags": 3-7 short keywords taken from the listed features.
- "confidence": "high", "medium" or "low", from the strength of the listed statistics.
- "data_quality_note": one sentence on the strength of the data or its caveats.
Use only the features listed above; mention no genes and no molecular mechanisms."""

_TERM_TABLE_HEADER = "| Feature | v.test | p-value | in cluster | overall |\n|---|---|---|---|---|"


def build_prompt(cluster_type: str, cluster: Mapping) -> str:
    """The user message for one cluster. Shows only hashed content (never the cluster
    number), so equal hashes always mean equal prompts."""
    _check_cluster_type(cluster_type)
    size = len(cluster["members"])
    if cluster_type == "functional":
        genes = list(cluster["genes"])
        shown = ", ".join(genes[:MAX_GENES_IN_PROMPT])
        if len(genes) > MAX_GENES_IN_PROMPT:
            shown += f", ... ({len(genes) - MAX_GENES_IN_PROMPT} more)"
        return FUNCTIONAL_PROMPT.format(size=size, genes=shown)
    return PHENOTYPE_PROMPT.format(
        size=size,
        enriched=_term_table(cluster.get("enriched") or [], "(no significantly enriched feature)"),
        depleted=_term_table(cluster.get("depleted") or [], "(no significantly depleted feature)"),
        inheritance=_term_table(cluster.get("inheritance") or [], "(no significant inheritance mode)"),
        feature_counts="\n".join(
            f"- {row['variable']}: v.test {row['v_test']:+.2f}, mean {row['mean_in_cluster']:g} "
            f"in the cluster vs {row['mean_overall']:g} overall"
            for row in cluster.get("feature_counts") or []
        )
        or "(not available)",
    )


def _term_table(terms: Sequence[Mapping], empty: str) -> str:
    if not terms:
        return empty
    lines = [
        f"| {t['term']} | {t['v_test']:+.2f} | {t['p_value']:.2g} | "
        f"{t['in_cluster_pct']:.1f}% | {t['overall_pct']:.1f}% |"
        for t in terms
    ]
    return "\n".join([_TERM_TABLE_HEADER, *lines])


# --- the model's answer -----------------------------------------------------------

# key -> kind, per cluster type; "required" keys must be present and non-empty.
_COMMON_REQUIRED = {"summary": "text", "tags": "list", "confidence": "confidence"}
_SCHEMAS = {
    "functional": {
        "required": {**_COMMON_REQUIRED, "key_themes": "list"},
        "optional": {"pathways": "list", "clinical_relevance": "text"},
    },
    "phenotype": {
        "required": {**_COMMON_REQUIRED, "key_phenotype_themes": "list", "clinical_pattern": "text"},
        "optional": {
            "notably_absent": "list",
            "syndrome_hints": "list",
            "inheritance_patterns": "list",
            "syndromicity": "syndromicity",
            "data_quality_note": "text",
        },
    },
}
_CODE_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL | re.IGNORECASE)


def parse_summary(cluster_type: str, content: str) -> dict:
    """The model's message content as a validated summary object.

    Keeps the schema's keys only; confidence and syndromicity are lower-cased; a
    single string where a list is expected becomes a one-item list (SysNDD's own
    rows hold ``"inheritance_patterns": "AD"`` as well as ``["AR", "MT"]``). Every
    problem is listed in one LLMResponseInvalid.
    """
    _check_cluster_type(cluster_type)
    text = (content or "").strip()
    fenced = _CODE_FENCE.match(text)  # some models wrap JSON mode output in a fence anyway
    if fenced:
        text = fenced.group(1)
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise LLMResponseInvalid(f"the model's answer is not JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(answer, dict):
        raise LLMResponseInvalid(f"the model's answer is JSON but not an object: {text[:200]!r}")

    schema = _SCHEMAS[cluster_type]
    summary, problems = {}, []
    for key, kind in [*schema["required"].items(), *schema["optional"].items()]:
        value = answer.get(key)
        if value is None or value == "" or value == []:
            if key in schema["required"]:
                problems.append(f"{key!r} is missing or empty")
            continue
        checked, problem = _checked_value(kind, value)
        if problem:
            problems.append(f"{key!r} {problem}")
        else:
            summary[key] = checked
    if problems:
        raise LLMResponseInvalid(f"the model's {cluster_type} summary is unusable: " + "; ".join(problems))
    return summary


def _checked_value(kind: str, value) -> tuple[object, str | None]:
    if kind == "text":
        if isinstance(value, str) and value.strip():
            return value.strip(), None
        return None, "must be a non-empty string"
    if kind == "list":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) and item.strip() for item in items):
            return None, "must be a list of non-empty strings"
        return [item.strip() for item in items], None
    levels = CONFIDENCE_LEVELS if kind == "confidence" else SYNDROMICITY_LEVELS
    normalised = value.strip().lower() if isinstance(value, str) else value
    if normalised not in levels:
        return None, f"must be one of {', '.join(levels)}, got {value!r}"
    return normalised, None


# --- the chat-completions client --------------------------------------------------


@dataclass
class _ChatClient:
    settings: LLMSettings
    session: requests.Session
    sleep: Callable[[float], None]
    #: Called with (reason, delay) before each retry's wait, so progress can show it.
    on_retry: Callable[[str, float], None]
    sender: RetryingSender = field(init=False)

    def __post_init__(self):
        per_minute = self.settings.rate_limit_per_minute
        self.sender = RetryingSender(
            limiter=RateLimiter(per_minute / 60.0 if per_minute else None, sleep=self.sleep),
            policy=self.settings.retry,
            sleep=self.sleep,
            # Looked up at each retry: summarise_clusters points it at the current cluster.
            on_retry=lambda reason, delay: self.on_retry(reason, delay),
        )

    def complete(self, messages: list[dict]) -> str:
        """The content of the first choice's message; retries transient failures."""
        url = f"{self.settings.base_url}/chat/completions"
        payload = {
            "model": self.settings.model,
            "messages": messages,
            "response_format": {"type": "json_object"},
            "temperature": 0,
        }
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        try:
            response = self.sender.send(
                lambda: self.session.post(url, json=payload, headers=headers, timeout=self.settings.timeout_seconds),
                url,
            )
        except Rejected as e:
            raise LLMRequestRejected(e.status_code, url, e.body) from None
        except Unavailable as e:
            raise LLMUnavailable(str(e)) from None
        return _message_content(response)


def _message_content(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        raise LLMResponseInvalid(f"the LLM endpoint answered non-JSON: {response.text[:200]!r}") from None
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        detail = body.get("error") if isinstance(body, dict) else None
        raise LLMResponseInvalid(
            f"the LLM endpoint's answer is not a chat completion: {str(detail or body)[:200]}"
        ) from None
    if not isinstance(content, str) or not content.strip():
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        raise LLMResponseInvalid(f"the model returned no content (finish_reason={finish!r})")
    return content


# --- the cache --------------------------------------------------------------------


def _ensure_table(engine: Engine) -> None:
    LLMSummary.__table__.create(engine, checkfirst=True)


def _cached(engine: Engine, digest: str, model: str) -> tuple[int, dict, str] | None:
    """(cache_id, summary, validation_status) of a usable cached summary, else None.

    A curator's "rejected" is not served; neither is a row whose JSON no longer parses.
    """
    table = LLMSummary.__table__
    with engine.connect() as conn:
        row = conn.execute(
            select(table.c.id, table.c.summary_json, table.c.validation_status).where(
                _content_key(table, digest, model)
            )
        ).first()
    if row is None or row.validation_status == "rejected":
        return None
    try:
        summary = json.loads(row.summary_json)
    except ValueError:
        return None
    return (row.id, summary, row.validation_status) if isinstance(summary, dict) else None


def _content_key(table, digest: str, model: str):
    return and_(
        table.c.cluster_hash == digest,
        table.c.model_name == model,
        table.c.prompt_version == PROMPT_VERSION,
    )


def _store(engine: Engine, *, cluster_type: str, number: int, digest: str, model: str, summary: dict) -> int:
    """Insert or overwrite the summary of (digest, model, PROMPT_VERSION); its cache_id."""
    table = LLMSummary.__table__
    now = datetime.now(timezone.utc)
    row = {
        "cluster_type": cluster_type,
        "cluster_number": number,
        "cluster_hash": digest,
        "model_name": model,
        "prompt_version": PROMPT_VERSION,
        "summary_json": json.dumps(summary, ensure_ascii=False),
        "tags": json.dumps(summary.get("tags", []), ensure_ascii=False),
        "is_current": True,
        "validation_status": "pending",
        "validated_at": None,
        "validated_by": None,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as conn:
        # ON CONFLICT: two jobs summarising the same cluster at once both succeed.
        upsert(
            conn,
            table,
            [row],
            key=["cluster_hash", "model_name", "prompt_version"],
            update_columns=[
                "cluster_type",
                "cluster_number",
                "summary_json",
                "tags",
                "is_current",
                "validation_status",
                "validated_at",
                "validated_by",
                "updated_at",
            ],
        )
        cache_id = conn.scalar(select(table.c.id).where(_content_key(table, digest, model)))
        _make_current(conn, cache_id, cluster_type, number)
    return cache_id


def _make_current(conn: Connection, cache_id: int, cluster_type: str, number: int) -> None:
    """This row becomes the one shown for (cluster_type, number), under that number."""
    table = LLMSummary.__table__
    conn.execute(
        update(table)
        .where(table.c.cluster_type == cluster_type, table.c.cluster_number == number, table.c.id != cache_id)
        .values(is_current=False)
    )
    conn.execute(update(table).where(table.c.id == cache_id).values(is_current=True, cluster_number=number))


# --- the run ----------------------------------------------------------------------


def summarise_clusters(
    engine: Engine,
    clusters: Sequence[Mapping],
    *,
    cluster_type: str,
    settings: LLMSettings,
    force: bool = False,
    session: requests.Session | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Summarise each cluster of ``clusters`` (from clusters_from_result), from the cache
    where possible, and return::

        {"cluster_type", "model", "prompt_version",
         "summaries": [{"cluster_number", "cluster_hash", "cached", "cache_id",
                        "validation_status", "summary_json": {...}}],
         "generated", "from_cache", "requests", "retries"}

    ``force`` asks the model even for cached clusters and overwrites their rows.
    Requests start at most ``settings.rate_limit_per_minute`` a minute; 408, 429, 5xx
    and network errors are retried with exponential backoff and jitter (Retry-After
    wins) and end in LLMUnavailable; other 4xx raise LLMRequestRejected at once; an
    unusable answer raises LLMResponseInvalid. Summaries made before a failure stay
    stored.

    ``progress(step, current, total, message)`` is called at each step of
    PROGRESS_STEPS; ``current`` is the number of clusters finished, ``total`` the
    number of clusters. An exception it raises aborts the run (how a job is
    cancelled). ``sleep`` is injectable so tests see the waits without spending them.
    """
    _check_cluster_type(cluster_type)
    if not isinstance(settings, LLMSettings):
        raise LLMNotConfigured("summarise_clusters needs LLMSettings (LLMSettings.from_env())")
    total = len(clusters)

    def report(step: str, current: int, message: str = "") -> None:
        if progress is not None:
            progress(step, current, total, message)

    report("start", 0, f"{total} {cluster_type} clusters, model {settings.model}, prompt {PROMPT_VERSION}")
    _ensure_table(engine)
    own_session = session is None
    if own_session:
        session = requests.Session()
    client = _ChatClient(settings, session, sleep, on_retry=lambda reason, delay: None)
    summaries = []
    try:
        for done, cluster in enumerate(clusters):
            number = int(cluster["cluster_number"])
            digest = cluster_hash(cluster_type, cluster)
            report("lookup", done, f"cluster {number}: looking for a cached summary")
            cached = None if force else _cached(engine, digest, settings.model)
            if cached is not None:
                cache_id, summary, status = cached
                with engine.begin() as conn:
                    _make_current(conn, cache_id, cluster_type, number)
                summaries.append(_entry(number, digest, True, cache_id, status, summary))
                continue

            report("generate", done, f"cluster {number}: asking {settings.model}")
            client.on_retry = lambda reason, delay, n=number, d=done: report(
                "wait", d, f"cluster {n}: {reason}; retrying in {delay:.1f} s"
            )
            content = client.complete(
                [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": build_prompt(cluster_type, cluster)},
                ]
            )
            summary = parse_summary(cluster_type, content)
            # Computed from the data, not asked of the model (SysNDD adds it the same way).
            summary["derived_confidence"] = cluster.get("derived_confidence") or derived_confidence([])

            report("store", done, f"cluster {number}: storing the summary")
            cache_id = _store(
                engine,
                cluster_type=cluster_type,
                number=number,
                digest=digest,
                model=settings.model,
                summary=summary,
            )
            summaries.append(_entry(number, digest, False, cache_id, "pending", summary))
    finally:
        if own_session:
            session.close()

    generated = sum(1 for entry in summaries if not entry["cached"])
    report("done", total, f"{generated} generated, {total - generated} from the cache")
    return {
        "cluster_type": cluster_type,
        "model": settings.model,
        "prompt_version": PROMPT_VERSION,
        "summaries": summaries,
        "generated": generated,
        "from_cache": total - generated,
        "requests": client.sender.requests_made,
        "retries": client.sender.retries,
    }


def _entry(number: int, digest: str, cached: bool, cache_id: int, status: str, summary: dict) -> dict:
    return {
        "cluster_number": number,
        "cluster_hash": digest,
        "cached": cached,
        "cache_id": cache_id,
        "validation_status": status,
        "summary_json": summary,
    }
