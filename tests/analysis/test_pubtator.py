"""update_publications against a local HTTP server shaped like the PubTator3 search API."""

from __future__ import annotations

import socket
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, insert, select

from actors.analysis.pubtator import (
    PubTatorRequestError,
    PubTatorUnavailableError,
    RateLimiter,
    RetryPolicy,
    gene_mentions,
    update_publications,
    upsert,
    upsert_by_select,
)
from actors.datastore.base import create_all
from actors.datastore.models import Publication, PublicationGeneMention
from tests.support import fake_apis


# Records in the shape of api_publication_pubtator_search_GET.json (text_hl shortened).
RECORDS = [
    {
        "pmid": 41439468,
        "doi": "10.1080/15384047.2025.2603095",
        "title": "Assessing progesterone receptor modulation in glioblastoma",
        "journal": "Cancer Biol Ther",
        "date": "2026-12-31T00:00:00Z",
        "score": 203.7361,
        "text_hl": "isocitrate dehydrogenase wild-type (@GENE_IDH1 @GENE_3417 @@@IDH@@@-wt) status, "
        "@GENE_TERT @GENE_7015 @@@telomerase reverse transcriptase@@@ (@GENE_TERT @GENE_7015 @@@TERT@@@) "
        "promoter <m>mutations</m>, @GENE_TP53 @GENE_7157 @@@tumor protein p53@@@",
    },
    {
        "pmid": 41454664,
        "doi": "10.1080/19490976.2025.2606487",
        "title": "Targeting the microbiome in pediatric migraine",
        "journal": "Gut Microbes",
        "date": "2026-12-31T00:00:00Z",
        "score": 208.2409,
        "text_hl": "NA",
    },
    {
        "pmid": 41433235,
        "doi": "10.1080/19336950.2025.2602975",
        "title": "KCNK4 channelopathy",
        "journal": "Channels (Austin)",
        "date": "2026-12-01T00:00:00Z",
        "score": 190.5,
        "text_hl": "variants in @GENE_KCNK4 @GENE_50801 @@@KCNK4@@@ cause "
        "@DISEASE_Intellectual_Disability @DISEASE_MESH:D008607 @@@intellectual disability@@@",
    },
    {
        "pmid": 41433127,
        "doi": "10.1080/19336950.2025.2607247",
        "title": "SLC12A5 and epilepsy",
        "journal": "Channels (Austin)",
        "date": "2026-12-01T00:00:00Z",
        "score": 180.25,
        "text_hl": "@GENE_SLC12A5 @GENE_57468 @@@KCC2@@@ in <m>autism</m>",
    },
    {
        "pmid": 41486865,
        "doi": "10.1080/07853890.2025.2603016",
        "title": "HADHA deficiency",
        "journal": "Ann Med",
        "date": "2026-12-01T00:00:00Z",
        "score": 170.0,
        "text_hl": "@GENE_HADHA @GENE_3030 @@@HADHA@@@",
    },
]
PAGES = [RECORDS[0:2], RECORDS[2:4], RECORDS[4:5]]
MENTIONS = 6  # IDH1, TERT, TP53, KCNK4, SLC12A5, HADHA


def page_body(pages: list[list[dict]], page: int) -> dict:
    return {
        "meta": {"perPage": [2], "currentPage": [page], "totalPages": [len(pages)]},
        "data": pages[page - 1],
    }


class SearchServer:
    """Serves /search/?text=..&page=N; ``failures[page]`` answers first, in order."""

    def __init__(self):
        self.pages = [list(records) for records in PAGES]
        self.failures: dict[int, list[tuple[int, dict]]] = {}
        self.requests: list[tuple[str, dict]] = []
        self.http = fake_apis.LocalServer(self._handle)
        self.base_url = self.http.url

    def _handle(self, request):
        self.requests.append((request.path, request.query))
        page = int(request.query.get("page", "1"))
        if request.path != "/search/":
            return 404, {}, {"detail": "not found"}
        if self.failures.get(page):
            status, headers = self.failures[page].pop(0)
            return status, headers, {"detail": "try again"}
        if page > len(self.pages):
            return 200, {}, {"meta": {"totalPages": [len(self.pages)]}, "data": []}
        return 200, {}, page_body(self.pages, page)

    def pages_requested(self) -> list[int]:
        return [int(params["page"]) for _, params in self.requests]


@pytest.fixture
def api():
    server = SearchServer()
    yield server
    server.http.close()


# --- databases: SQLite always, PostgreSQL when reachable ---------------------------






def run(engine, api, **overrides):
    sleeps: list[float] = []
    progress: list[tuple] = []
    options = dict(
        query="neurodevelopmental disorder",
        base_url=api.base_url,
        max_pages=10,
        rate_limit_per_second=None,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
        sleep=sleeps.append,
        progress=lambda *args: progress.append(args),
    )
    options.update(overrides)
    return update_publications(engine, **options), sleeps, progress


def counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        publications = conn.scalar(select(func.count()).select_from(Publication))
        mentions = conn.scalar(select(func.count()).select_from(PublicationGeneMention))
    return publications, mentions


# --- tests ------------------------------------------------------------------------


def test_pages_until_the_last_page_and_stores_everything(engine, api):
    result, sleeps, progress = run(engine, api)

    assert api.pages_requested() == [1, 2, 3]
    assert api.requests[0][1]["text"] == "neurodevelopmental disorder"
    assert result["pages"] == 3
    assert result["total_pages_available"] == 3
    assert result["publications_inserted"] == len(RECORDS)
    assert result["mentions"] == MENTIONS
    assert counts(engine) == (len(RECORDS), MENTIONS)
    assert {step for step, *_ in progress} >= {"start", "fetch", "store", "done"}

    with engine.connect() as conn:
        tert = conn.execute(
            select(PublicationGeneMention).where(PublicationGeneMention.entrez_id == "7015")
        ).one()
        kcnk4 = conn.execute(
            select(PublicationGeneMention).where(PublicationGeneMention.entrez_id == "50801")
        ).one()
        empty = conn.execute(select(Publication).where(Publication.pmid == 41454664)).one()
    assert (tert.symbol, tert.mention_count) == ("TERT", 2)
    assert kcnk4.hgnc_id == "HGNC:6279"  # Entrez 50801 -> KCNK4 through the shipped mapping
    assert empty.text_hl is None  # R's "NA" is a missing value, not text
    assert str(empty.publication_date) == "2026-12-31"


def test_max_pages_stops_early(engine, api):
    result, _, _ = run(engine, api, max_pages=2)
    assert api.pages_requested() == [1, 2]
    assert result["pages"] == 2
    assert counts(engine) == (4, 5)


def test_running_the_same_pages_twice_is_idempotent(engine, api):
    first, _, _ = run(engine, api)
    second, _, _ = run(engine, api)

    assert first["publications_inserted"] == len(RECORDS)
    assert (second["publications_inserted"], second["publications_updated"]) == (0, 0)
    assert second["publications_unchanged"] == len(RECORDS)
    assert counts(engine) == (len(RECORDS), MENTIONS)


def test_changed_record_is_updated_and_stale_mentions_removed(engine, api):
    run(engine, api)
    changed = dict(RECORDS[0], title="Corrected title", text_hl="only @GENE_TP53 @GENE_7157 @@@p53@@@ now")
    api.pages[0] = [changed, RECORDS[1]]

    result, _, _ = run(engine, api)

    assert (result["publications_inserted"], result["publications_updated"]) == (0, 1)
    assert result["mentions_removed"] == 2  # IDH1 and TERT
    with engine.connect() as conn:
        title = conn.scalar(select(Publication.title).where(Publication.pmid == 41439468))
    assert title == "Corrected title"
    assert counts(engine) == (len(RECORDS), MENTIONS - 2)


def test_429_waits_for_retry_after_then_succeeds(engine, api):
    api.failures[2] = [(429, {"Retry-After": "7"})]
    result, sleeps, _ = run(engine, api)

    assert api.pages_requested() == [1, 2, 2, 3]
    assert sleeps == [7.0]
    assert result["retries"] == 1
    assert result["publications_inserted"] == len(RECORDS)


def test_500_is_retried_with_backoff(engine, api):
    api.failures[1] = [(500, {}), (503, {})]
    result, sleeps, _ = run(engine, api)

    assert api.pages_requested() == [1, 1, 1, 2, 3]
    assert len(sleeps) == 2 and all(0 < delay <= 0.05 for delay in sleeps)
    assert result["retries"] == 2
    assert counts(engine) == (len(RECORDS), MENTIONS)


def test_500_gives_up_after_max_retries(engine, api):
    api.failures[1] = [(500, {})] * 10
    with pytest.raises(PubTatorUnavailableError):
        run(engine, api, max_retries=3)
    assert api.pages_requested() == [1, 1, 1, 1]


def test_404_is_not_retried(engine, api):
    with pytest.raises(PubTatorRequestError) as raised:
        run(engine, api, base_url=api.base_url + "/wrong")
    assert raised.value.status_code == 404
    assert len(api.requests) == 1


def test_failure_on_a_later_page_keeps_the_earlier_pages(engine, api):
    api.failures[2] = [(400, {})]
    with pytest.raises(PubTatorRequestError):
        run(engine, api)
    assert counts(engine)[0] == 2


def test_connection_errors_are_retried(engine):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(PubTatorUnavailableError):
        update_publications(
            engine,
            query="x",
            base_url=f"http://127.0.0.1:{port}",
            rate_limit_per_second=None,
            max_retries=2,
            backoff_base_seconds=0.01,
            sleep=sleeps.append,
        )
    assert len(sleeps) == 2


def test_too_long_retry_after_fails_instead_of_blocking(engine, api):
    api.failures[1] = [(503, {"Retry-After": "3600"})]
    with pytest.raises(PubTatorUnavailableError):
        run(engine, api)


@pytest.mark.parametrize("write", [upsert, upsert_by_select], ids=["native", "by_select"])
def test_upsert_inserts_then_updates(engine, write):
    create_all(engine)
    table = PublicationGeneMention.__table__
    with engine.begin() as conn:  # mentions need their publication (a foreign key on PostgreSQL)
        conn.execute(
            insert(Publication.__table__),
            [{"pmid": 1, "created_at": datetime.now(timezone.utc), "updated_at": datetime.now(timezone.utc)}],
        )
    key, columns = ["pmid", "entrez_id"], ["symbol", "mention_count"]
    first = [{"pmid": 1, "entrez_id": "7157", "symbol": "TP53", "mention_count": 1}]
    second = [
        {"pmid": 1, "entrez_id": "7157", "symbol": "TP53", "mention_count": 4},
        {"pmid": 1, "entrez_id": "3417", "symbol": "IDH1", "mention_count": 1},
    ]
    for rows in (first, second, second):
        with engine.begin() as conn:
            write(conn, table, rows, key, columns)
    with engine.connect() as conn:
        stored = set(conn.execute(select(table.c.entrez_id, table.c.mention_count)))
    assert stored == {("7157", 4), ("3417", 1)}


# --- pure helpers -----------------------------------------------------------------


def test_rate_limiter_spaces_requests():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(3, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.wait()
    assert slept == pytest.approx([1 / 3] * 3)


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(backoff_base_seconds=1, backoff_max_seconds=8)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (3, 8), (6, 8)]:
        delay = policy.backoff(attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_gene_mentions_parse_pubtator_markup():
    mentions = gene_mentions(RECORDS[0]["text_hl"] + " @GENE_CDK2A @GENE_1029;1030 @@@CDK2A/B@@@")
    assert {k: v["count"] for k, v in mentions.items()} == {
        "3417": 1,
        "7015": 2,
        "7157": 1,
        "1029": 1,
        "1030": 1,
    }
    assert gene_mentions(None) == {}
