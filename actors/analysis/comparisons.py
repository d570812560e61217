"""Compare SysNDD's genes with external NDD gene lists (the data behind the UpSet plot).

Source format (each source a URL or a local path, optionally gzip-compressed):

* CSV or TSV with a header row naming a gene column: ``hgnc_id`` (``HGNC:1234`` or
  ``1234``) and/or ``symbol`` (also accepted: ``gene_symbol``, ``approved_symbol``,
  ``hgnc_symbol``, ``gene``). Lines starting with ``#`` are comments.
* JSON: a list of strings (HGNC ids or symbols), a list of objects with ``hgnc_id`` /
  ``symbol`` keys, or either wrapped as ``{"data": [...]}``.

The format comes from the name (``.csv``, ``.tsv``, ``.json``, each optionally ``.gz``),
else from the content. An HGNC id wins over a symbol; symbols are mapped through the
shipped ``actors/data/hgnc_symbols.csv.gz`` and entries it does not know are counted
as unmapped and dropped, never guessed.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from actors.datastore.models import ComparisonListMetadata, ComparisonMembership

Progress = Callable[..., None]

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
HGNC_SYMBOLS_PATH = DATA_DIR / "hgnc_symbols.csv.gz"
DEFAULT_LISTS_DIR = DATA_DIR / "comparison_lists"

HGNC_ID = re.compile(r"^HGNC:([0-9]+)$", re.IGNORECASE)
LIST_NAME_MAX = 64
HGNC_COLUMNS = ("hgnc_id", "hgnc")
SYMBOL_COLUMNS = ("symbol", "gene_symbol", "approved_symbol", "hgnc_symbol", "gene")
#: A gene list is a few hundred kilobytes; anything far larger is not one.
MAX_SOURCE_BYTES = 50 * 1024 * 1024
INSERT_CHUNK = 1_000


class ComparisonError(Exception):
    """Base class of the comparison update's failures."""


class ComparisonSourceError(ComparisonError):
    """One source could not be read or parsed; nothing was written."""

    def __init__(self, list_name: str, location: str, reason: str):
        super().__init__(f"comparison source {list_name!r} ({location}): {reason}")
        self.list_name = list_name
        self.location = location
        self.reason = reason


# --- the shipped HGNC mapping ------------------------------------------------------


@dataclass(frozen=True)
class HgncSymbols:
    """Symbol / Entrez id -> HGNC id, and each HGNC id's display symbol."""

    hgnc_by_symbol: Mapping[str, str]
    hgnc_by_entrez: Mapping[str, str]
    symbol_by_hgnc: Mapping[str, str]

    def hgnc_for_symbol(self, symbol: str) -> str | None:
        # Human symbols are upper case; a list that lower-cased them still maps.
        # (PubTator mentions use the exact symbol only: mixed case there usually
        # means another species' gene.)
        return self.hgnc_by_symbol.get(symbol) or self.hgnc_by_symbol.get(symbol.upper())


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


@lru_cache(maxsize=4)
def load_hgnc_symbols(path: str | Path = HGNC_SYMBOLS_PATH) -> HgncSymbols:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(_without_comments(handle.read()))))
    by_symbol: dict[str, str] = {}
    by_entrez: dict[str, str] = {}
    display: dict[str, str] = {}
    for row in rows:
        by_symbol[row["symbol"]] = row["hgnc_id"]
        if row.get("entrez_id"):
            by_entrez[row["entrez_id"]] = row["hgnc_id"]
        # The builder writes each gene's current symbol first.
        display.setdefault(row["hgnc_id"], row["symbol"])
    return HgncSymbols(by_symbol, by_entrez, display)


def default_sources(directory: Path = DEFAULT_LISTS_DIR) -> dict[str, str]:
    """The shipped lists (split from SysNDD's upset sample), in their manifest order."""
    manifest = json.loads((directory / "sources.json").read_text("utf-8"))
    return {entry["name"]: str(directory / entry["file"]) for entry in manifest["lists"]}


# --- reading one source -----------------------------------------------------------


@dataclass
class ParsedList:
    name: str
    location: str
    entries: int = 0
    unmapped: int = 0
    outside_universe: int = 0
    #: HGNC id -> symbol (None when neither the list nor the mapping has one).
    genes: dict[str, str | None] = field(default_factory=dict)


def _read_bytes(location: str, timeout_seconds: float) -> bytes:
    parsed = urlparse(location)
    if parsed.scheme in ("http", "https"):
        with requests.get(location, timeout=timeout_seconds, stream=True) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_SOURCE_BYTES:
                    raise ValueError(f"larger than {MAX_SOURCE_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(location)
    if path.stat().st_size > MAX_SOURCE_BYTES:
        raise ValueError(f"larger than {MAX_SOURCE_BYTES} bytes")
    return path.read_bytes()


def _detect_format(location: str, text: str) -> str:
    suffixes = [s.lower() for s in Path(urlparse(location).path).suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in (".csv", ".tsv", ".json"):
        return suffixes[-1][1:]
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        return "json"
    header = _without_comments(text).lstrip().split("\n", 1)[0]
    return "tsv" if "\t" in header else "csv"


def _rows_from_delimited(text: str, delimiter: str) -> list[tuple[str, str]]:
    reader = csv.DictReader(io.StringIO(_without_comments(text)), delimiter=delimiter)
    columns = {name.strip().lower(): name for name in (reader.fieldnames or [])}
    hgnc_column = next((columns[c] for c in HGNC_COLUMNS if c in columns), None)
    symbol_column = next((columns[c] for c in SYMBOL_COLUMNS if c in columns), None)
    if not hgnc_column and not symbol_column:
        raise ValueError(
            f"no gene column: expected one of {HGNC_COLUMNS + SYMBOL_COLUMNS}, got {reader.fieldnames}"
        )
    return [
        (
            (row.get(hgnc_column) or "") if hgnc_column else "",
            (row.get(symbol_column) or "") if symbol_column else "",
        )
        for row in reader
    ]


def _rows_from_json(text: str) -> list[tuple[str, str]]:
    payload = json.loads(text)
    if isinstance(payload, dict):
        payload = payload.get("data")
    if not isinstance(payload, list):
        raise ValueError("JSON must be a list (or {'data': [...]}) of genes")
    rows = []
    for item in payload:
        if isinstance(item, str):
            rows.append((item, "") if HGNC_ID.match(item.strip()) else ("", item))
        elif isinstance(item, dict):
            rows.append((str(item.get("hgnc_id") or ""), str(item.get("symbol") or "")))
        else:
            raise ValueError(f"unexpected JSON entry {item!r}")
    return rows


def _normalise_hgnc_id(value: str) -> str | None:
    value = value.strip()
    if value.isdigit():
        return f"HGNC:{int(value)}"
    match = HGNC_ID.match(value)
    return f"HGNC:{int(match.group(1))}" if match else None


def read_gene_list(
    name: str,
    location: str,
    *,
    hgnc: HgncSymbols,
    gene_universe: frozenset[str] | None = None,
    timeout_seconds: float = 60.0,
) -> ParsedList:
    """Read one source into HGNC ids; any failure becomes a ComparisonSourceError."""
    try:
        raw = _read_bytes(location, timeout_seconds)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
        fmt = _detect_format(location, text)
        rows = (
            _rows_from_json(text)
            if fmt == "json"
            else _rows_from_delimited(text, "\t" if fmt == "tsv" else ",")
        )
    except (OSError, ValueError, UnicodeDecodeError, csv.Error, requests.RequestException) as exc:
        raise ComparisonSourceError(name, location, f"{type(exc).__name__}: {exc}") from exc

    parsed = ParsedList(name=name, location=location)
    for raw_id, raw_symbol in rows:
        symbol = raw_symbol.strip()
        if not raw_id.strip() and not symbol:
            continue
        parsed.entries += 1
        hgnc_id = _normalise_hgnc_id(raw_id) or (hgnc.hgnc_for_symbol(symbol) if symbol else None)
        if hgnc_id is None:
            parsed.unmapped += 1
            continue
        if gene_universe is not None and hgnc_id not in gene_universe:
            parsed.outside_universe += 1
            continue
        parsed.genes[hgnc_id] = hgnc.symbol_by_hgnc.get(hgnc_id) or symbol or None
    if not parsed.genes:
        # An empty list is almost always a changed download format; replacing the
        # table with it would silently drop the whole list.
        raise ComparisonSourceError(
            name, location, f"no genes recognised in {parsed.entries} entries ({parsed.unmapped} unmapped)"
        )
    return parsed


# --- the update -------------------------------------------------------------------


def _report(progress: Progress | None, step: str, current: int, total: int, message: str = "") -> None:
    if progress is not None:
        progress(step, current, total, message)


def upset_from_lists(lists: list[ParsedList]) -> list[dict]:
    """Per gene the lists naming it, in the shape of /api/comparisons/upset."""
    sets: dict[str, list[str]] = {}
    for parsed in lists:
        for hgnc_id in parsed.genes:
            sets.setdefault(hgnc_id, []).append(parsed.name)
    # Sorted as strings ("HGNC:10002" < "HGNC:1020"), as the API does.
    return [{"name": hgnc_id, "sets": sets[hgnc_id]} for hgnc_id in sorted(sets)]


def _ensure_tables(engine: Engine) -> None:
    tables = [ComparisonMembership.__table__, ComparisonListMetadata.__table__]
    ComparisonMembership.metadata.create_all(engine, tables=tables)


def update_comparisons(
    engine: Engine,
    *,
    sources: Mapping[str, str] | None = None,
    gene_universe: Iterable[str] | None = None,
    progress: Progress | None = None,
    timeout_seconds: float = 60.0,
    hgnc_symbols_path: str | Path = HGNC_SYMBOLS_PATH,
) -> dict:
    """Load every source, then replace the comparison tables in one transaction.

    ``sources`` maps list name -> URL or path; ``None`` means the shipped lists.
    ``gene_universe`` (HGNC ids), when given, keeps only those genes. All sources are
    read before the database is touched, and the delete + insert run in a single
    transaction, so any failure leaves the previous comparison in place.
    """
    sources = dict(default_sources() if sources is None else sources)
    if not sources:
        raise ComparisonError("no comparison sources given")
    for name in sources:
        if not name or len(name) > LIST_NAME_MAX:
            raise ComparisonError(f"list name {name!r} must have 1..{LIST_NAME_MAX} characters")
    universe = frozenset(gene_universe) if gene_universe is not None else None
    hgnc = load_hgnc_symbols(hgnc_symbols_path)

    lists: list[ParsedList] = []
    for index, (name, location) in enumerate(sources.items()):
        _report(progress, "load", index, len(sources), f"reading {name}")
        lists.append(
            read_gene_list(name, location, hgnc=hgnc, gene_universe=universe, timeout_seconds=timeout_seconds)
        )
    _report(progress, "load", len(sources), len(sources), f"read {len(sources)} lists")

    fetched_at = datetime.now(timezone.utc).replace(microsecond=0)
    memberships = [
        {"hgnc_id": hgnc_id, "symbol": symbol, "list_name": parsed.name}
        for parsed in lists
        for hgnc_id, symbol in parsed.genes.items()
    ]
    _ensure_tables(engine)
    total = len(memberships)
    with engine.begin() as conn:
        conn.execute(delete(ComparisonMembership.__table__))
        conn.execute(delete(ComparisonListMetadata.__table__))
        for start in range(0, total, INSERT_CHUNK):
            _report(progress, "write", start, total, "replacing the comparison table")
            conn.execute(insert(ComparisonMembership.__table__), memberships[start : start + INSERT_CHUNK])
        conn.execute(
            insert(ComparisonListMetadata.__table__),
            [
                {
                    "list_name": parsed.name,
                    "source": parsed.location,
                    "fetched_at": fetched_at,
                    "row_count": len(parsed.genes),
                    "unmapped_count": parsed.unmapped,
                    "position": position,
                }
                for position, parsed in enumerate(lists)
            ],
        )
        _report(progress, "write", total, total, f"{total} memberships written")

    upset = upset_from_lists(lists)
    result = {
        "upset": upset,
        "metadata": {
            "last_full_refresh": fetched_at.isoformat().replace("+00:00", "Z"),
            "last_refresh_status": "success",
            "last_refresh_error": None,
            "sources_count": len(lists),
            "rows_imported": total,
            "genes": len(upset),
            "lists": [
                {
                    "name": parsed.name,
                    "source": parsed.location,
                    "row_count": len(parsed.genes),
                    "entries": parsed.entries,
                    "unmapped": parsed.unmapped,
                    "outside_universe": parsed.outside_universe,
                }
                for parsed in lists
            ],
        },
    }
    _report(progress, "done", len(upset), len(upset), f"{len(upset)} genes across {len(lists)} lists")
    return result


def read_upset(engine: Engine) -> list[dict]:
    """The stored comparison in the shape of /api/comparisons/upset."""
    _ensure_tables(engine)
    membership, metadata = ComparisonMembership.__table__, ComparisonListMetadata.__table__
    with engine.connect() as conn:
        order = {
            row.list_name: row.position
            for row in conn.execute(select(metadata.c.list_name, metadata.c.position))
        }
        rows = conn.execute(select(membership.c.hgnc_id, membership.c.list_name)).all()
    sets: dict[str, list[str]] = {}
    for hgnc_id, list_name in rows:
        sets.setdefault(hgnc_id, []).append(list_name)
    return [
        {"name": hgnc_id, "sets": sorted(sets[hgnc_id], key=lambda name: (order.get(name, len(order)), name))}
        for hgnc_id in sorted(sets)
    ]
