"""Page through the PubTator3 search API and upsert publications and their gene mentions.

``GET {base_url}/search/?text=<query>&page=<n>`` answers, as SysNDD's API relays it,
``{"meta": {"totalPages": [..]}, "data": [{pmid, doi, title, journal, date, score,
text_hl}, ...]}``; PubTator3's own ``{"results": [...], "total_pages": n}`` is accepted
too. Genes are the ``@GENE_<symbol> @GENE_<entrez> @@@text@@@`` annotations in
``text_hl``.

Each page is written in its own transaction: a failure on page 7 keeps pages 1-6, and
running the same pages again changes nothing (publications are upserted on ``pmid``,
mentions on ``(pmid, entrez_id)`` and stale mentions removed).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

import requests
from sqlalchemy import Table, and_, delete, insert, select, tuple_, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from actors.analysis.comparisons import HgncSymbols, load_hgnc_symbols
from actors.analysis.http_retry import RateLimiter, Rejected, RetryingSender, RetryPolicy, Unavailable
from actors.datastore.models import Publication, PublicationGeneMention

Progress = Callable[..., None]

DEFAULT_BASE_URL = "https://www.ncbi.nlm.nih.gov/research/pubtator3-api"
USER_AGENT = "sysndd-jobs (pubtator_update)"
GENE_ANNOTATION = re.compile(r"@GENE_(\S+)\s+@GENE_(\S+)\s+@@@")
PUBLICATION_FIELDS = (
    "doi",
    "title",
    "journal",
    "publication_date",
    "authors",
    "abstract",
    "text_hl",
    "score",
)


class PubTatorError(Exception):
    """Base class of the PubTator update's failures."""


class PubTatorRequestError(PubTatorError):
    """The API refused the request (a 4xx other than 408/429): retrying cannot help."""

    def __init__(self, status_code: int, url: str, body: str = ""):
        super().__init__(f"PubTator answered HTTP {status_code} for {url}: {body[:200]}")
        self.status_code = status_code
        self.url = url


class PubTatorUnavailableError(PubTatorError):
    """Still failing (429, 5xx, network) after every retry, or asked to wait too long."""


class PubTatorResponseError(PubTatorError):
    """A 2xx answer that is not the expected JSON shape."""


# --- rate limit and retries -------------------------------------------------------


@dataclass
class _Fetcher:
    session: requests.Session
    sender: RetryingSender
    timeout_seconds: float

    def get_json(self, url: str, params: dict) -> dict:
        try:
            response = self.sender.send(
                lambda: self.session.get(url, params=params, timeout=self.timeout_seconds), f"{url} {params}"
            )
        except Rejected as e:
            raise PubTatorRequestError(e.status_code, e.url, e.body) from None
        except Unavailable as e:
            raise PubTatorUnavailableError(str(e)) from None
        try:
            body = response.json()
        except ValueError as exc:
            raise PubTatorResponseError(f"{response.url}: not JSON ({exc})") from exc
        if not isinstance(body, dict):
            raise PubTatorResponseError(f"{response.url}: expected a JSON object")
        return body


# --- response parsing -------------------------------------------------------------


def _scalar(value):
    # SysNDD's R API boxes scalars in one-element arrays ({"totalPages": [10305]}).
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _text(value) -> str | None:
    value = _scalar(value)
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "NA") else text


def _date(value) -> date | None:
    text = _text(value)
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


def _float(value) -> float | None:
    try:
        return float(_scalar(value))
    except (TypeError, ValueError):
        return None


def page_records(body: dict) -> list[dict]:
    records = body.get("data", body.get("results"))
    if not isinstance(records, list):
        raise PubTatorResponseError("response has neither a 'data' nor a 'results' list")
    return records


def page_count(body: dict) -> int | None:
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    for value in (meta.get("totalPages"), body.get("total_pages")):
        value = _scalar(value)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                pass
    return None


def gene_mentions(text_hl: str | None) -> dict[str, dict]:
    """Entrez id -> {symbol, count} for the gene annotations of one passage."""
    mentions: dict[str, dict] = {}
    counts: Counter[str] = Counter()
    for symbol, entrez_field in GENE_ANNOTATION.findall(text_hl or ""):
        # A mention normalised to several genes lists their Entrez ids with ";".
        for entrez_id in entrez_field.split(";"):
            if entrez_id.isdigit():
                counts[entrez_id] += 1
                mentions.setdefault(entrez_id, {"symbol": symbol[:64]})
    for entrez_id, count in counts.items():
        mentions[entrez_id]["count"] = count
    return mentions


def publication_row(record: dict, query: str) -> dict | None:
    try:
        pmid = int(_scalar(record.get("pmid")))
    except (TypeError, ValueError):
        return None
    authors = record.get("authors")
    if isinstance(authors, list):
        authors = ", ".join(str(author) for author in authors if author)
    return {
        "pmid": pmid,
        "doi": (_text(record.get("doi")) or "")[:255] or None,
        "title": _text(record.get("title")),
        "journal": (_text(record.get("journal")) or "")[:512] or None,
        "publication_date": _date(record.get("date")),
        "authors": _text(authors),
        "abstract": _text(record.get("abstract")),
        "text_hl": _text(record.get("text_hl")),
        "score": _float(record.get("score")),
        "search_query": query[:1000],
    }


# --- writing ----------------------------------------------------------------------


def upsert(
    conn: Connection, table: Table, rows: Sequence[dict], key: Sequence[str], update_columns: Sequence[str]
) -> None:
    """Insert rows, updating ``update_columns`` of rows whose ``key`` already exists.

    Native ON CONFLICT / ON DUPLICATE KEY where the dialect has it (one round trip,
    safe against a concurrent writer); otherwise select-then-update inside the
    caller's transaction.
    """
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        dialect_insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        statement = dialect_insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=list(key), set_={column: statement.excluded[column] for column in update_columns}
        )
        conn.execute(statement, list(rows))
    elif dialect in ("mysql", "mariadb"):
        statement = mysql.insert(table)
        statement = statement.on_duplicate_key_update(
            {column: statement.inserted[column] for column in update_columns}
        )
        conn.execute(statement, list(rows))
    else:
        upsert_by_select(conn, table, rows, key, update_columns)


def upsert_by_select(
    conn: Connection, table: Table, rows: Sequence[dict], key: Sequence[str], update_columns: Sequence[str]
) -> None:
    """The portable upsert: look the keys up, update those found, insert the rest.

    Correct inside one transaction; unlike ON CONFLICT it can race a concurrent
    inserter of the same key (the unique constraint then fails the transaction,
    and the job's retry repeats the page).
    """
    if not rows:
        return
    key_columns = [table.c[name] for name in key]

    def key_of(row: dict) -> tuple:
        return tuple(row[name] for name in key)

    wanted = {key_of(row) for row in rows}
    if len(key_columns) == 1:
        condition = key_columns[0].in_([k[0] for k in wanted])
    else:
        condition = tuple_(*key_columns).in_(list(wanted))
    existing = {tuple(found) for found in conn.execute(select(*key_columns).where(condition))}
    for row in rows:
        if key_of(row) in existing:
            match = and_(*(column == value for column, value in zip(key_columns, key_of(row), strict=True)))
            conn.execute(update(table).where(match).values({c: row[c] for c in update_columns}))
    new_rows = [row for row in rows if key_of(row) not in existing]
    if new_rows:
        conn.execute(insert(table), new_rows)


@dataclass
class _PageWrite:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    mentions: int = 0
    mentions_removed: int = 0


def store_page(engine: Engine, rows: list[dict], hgnc: HgncSymbols) -> _PageWrite:
    """Upsert one page's publications and mentions in one transaction."""
    publications = Publication.__table__
    mentions_table = PublicationGeneMention.__table__
    by_pmid = {row["pmid"]: row for row in rows}  # a page naming a pmid twice keeps the last
    outcome = _PageWrite()
    if not by_pmid:
        return outcome
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        stored = {
            row.pmid: row
            for row in conn.execute(
                select(publications.c.pmid, *(publications.c[f] for f in PUBLICATION_FIELDS)).where(
                    publications.c.pmid.in_(list(by_pmid))
                )
            )
        }
        changed = []
        for pmid, row in by_pmid.items():
            old = stored.get(pmid)
            if old is None:
                outcome.inserted += 1
            elif any(getattr(old, f) != row[f] for f in PUBLICATION_FIELDS):
                outcome.updated += 1
            else:
                outcome.unchanged += 1
                continue
            changed.append({**row, "created_at": now, "updated_at": now})
        upsert(
            conn,
            publications,
            changed,
            key=["pmid"],
            update_columns=[*PUBLICATION_FIELDS, "search_query", "updated_at"],
        )

        mention_rows = []
        for pmid, row in by_pmid.items():
            for entrez_id, mention in gene_mentions(row["text_hl"]).items():
                symbol = mention["symbol"]
                mention_rows.append(
                    {
                        "pmid": pmid,
                        "entrez_id": entrez_id,
                        "symbol": symbol,
                        # Entrez first: PubTator's symbol may be another species' gene.
                        "hgnc_id": hgnc.hgnc_by_entrez.get(entrez_id) or hgnc.hgnc_by_symbol.get(symbol),
                        "mention_count": mention["count"],
                    }
                )
        upsert(
            conn,
            mentions_table,
            mention_rows,
            key=["pmid", "entrez_id"],
            update_columns=["symbol", "hgnc_id", "mention_count"],
        )
        outcome.mentions = len(mention_rows)
        # Mentions a re-annotated passage no longer has.
        keep = {(m["pmid"], m["entrez_id"]) for m in mention_rows}
        old_mentions = conn.execute(
            select(mentions_table.c.id, mentions_table.c.pmid, mentions_table.c.entrez_id).where(
                mentions_table.c.pmid.in_(list(by_pmid))
            )
        ).all()
        stale = [m.id for m in old_mentions if (m.pmid, m.entrez_id) not in keep]
        if stale:
            conn.execute(delete(mentions_table).where(mentions_table.c.id.in_(stale)))
        outcome.mentions_removed = len(stale)
    return outcome


# --- the update -------------------------------------------------------------------


def _report(progress: Progress | None, step: str, current: int, total: int, message: str = "") -> None:
    if progress is not None:
        progress(step, current, total, message)


def _ensure_tables(engine: Engine) -> None:
    tables = [Publication.__table__, PublicationGeneMention.__table__]
    Publication.metadata.create_all(engine, tables=tables)


def update_publications(
    engine: Engine,
    *,
    query: str,
    base_url: str = DEFAULT_BASE_URL,
    max_pages: int = 10,
    rate_limit_per_second: float | None = 3.0,
    max_retries: int = 5,
    backoff_base_seconds: float = 1.0,
    backoff_max_seconds: float = 60.0,
    max_retry_after_seconds: float = 300.0,
    timeout_seconds: float = 30.0,
    session: requests.Session | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    hgnc_symbols: HgncSymbols | None = None,
) -> dict:
    """Fetch up to ``max_pages`` search pages for ``query`` and upsert what they hold.

    Stops early at the API's last page or at an empty page. 429, 408, 5xx and network
    errors are retried ``max_retries`` times with exponential backoff and jitter (a
    Retry-After header wins); other 4xx raise PubTatorRequestError at once.
    ``rate_limit_per_second`` of None or 0 disables the limiter (tests only: PubTator3
    asks for at most 3 requests per second). ``sleep`` is injectable so tests can
    observe the waits without spending them.
    """
    if not query or not query.strip():
        raise ValueError("query must not be empty")
    if max_pages < 1:
        raise ValueError("max_pages must be at least 1")
    hgnc = hgnc_symbols or load_hgnc_symbols()
    _ensure_tables(engine)

    own_session = session is None
    if own_session:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
    fetcher = _Fetcher(
        session=session,
        sender=RetryingSender(
            limiter=RateLimiter(rate_limit_per_second, sleep=sleep),
            policy=RetryPolicy(max_retries, backoff_base_seconds, backoff_max_seconds, max_retry_after_seconds),
            sleep=sleep,
        ),
        timeout_seconds=timeout_seconds,
    )
    url = f"{base_url.rstrip('/')}/search/"
    totals = _PageWrite()
    pages_done = 0
    skipped = 0
    available: int | None = None
    planned = max_pages
    try:
        _report(progress, "start", 0, planned, f"searching PubTator for {query!r}")
        for page in range(1, max_pages + 1):
            _report(progress, "fetch", page - 1, planned, f"fetching page {page}")
            body = fetcher.get_json(url, {"text": query, "page": page})
            records = page_records(body)
            available = page_count(body) if available is None else available
            if available is not None:
                planned = max(1, min(max_pages, available))
            if not records:
                break
            rows = [row for row in (publication_row(r, query) for r in records) if row is not None]
            skipped += len(records) - len(rows)
            _report(progress, "store", page - 1, planned, f"storing {len(rows)} publications of page {page}")
            written = store_page(engine, rows, hgnc)
            for name in ("inserted", "updated", "unchanged", "mentions", "mentions_removed"):
                setattr(totals, name, getattr(totals, name) + getattr(written, name))
            pages_done = page
            if available is not None and page >= available:
                break
    finally:
        if own_session:
            session.close()

    result = {
        "query": query,
        "pages": pages_done,
        "total_pages_available": available,
        "publications_inserted": totals.inserted,
        "publications_updated": totals.updated,
        "publications_unchanged": totals.unchanged,
        "records_skipped": skipped,
        "mentions": totals.mentions,
        "mentions_removed": totals.mentions_removed,
        "requests": fetcher.sender.requests_made,
        "retries": fetcher.sender.retries,
    }
    _report(
        progress,
        "done",
        pages_done,
        pages_done,
        f"{totals.inserted} new, {totals.updated} updated, {totals.unchanged} unchanged publications",
    )
    return result
