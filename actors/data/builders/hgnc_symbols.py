"""Build the HGNC symbol mapping and the default comparison lists from SysNDD's API samples.

    python -m actors.data.builders.hgnc_symbols [--source-dir DIR] [--data-dir DIR]

Writes, under actors/data/:

* ``hgnc_symbols.csv.gz``: ``symbol,hgnc_id,entrez_id,ensembl_gene_id``, one row per
  symbol. Taken from panels/browse (1,802 genes with Entrez and Ensembl ids), then the
  genes of network_edges and phenotype_clustering that panels lacks (HGNC id and symbol
  only). The upset sample names genes by HGNC id only, so it adds no symbols. A gene
  renamed between samples keeps both symbols; the first row of an HGNC id (panels
  first) is its display symbol.
* ``comparison_lists/<list>.csv`` (``hgnc_id,symbol``): the upset sample split into one
  file per external list, so ``comparisons_update`` runs offline by default, and
  ``comparison_lists/sources.json`` naming them in the order the sample lists sets.

Lines starting with ``#`` are comments (the attribution); the readers skip them.

Data: SysNDD (sysndd.dbmr.unibe.ch), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import itertools
import json
import re
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SOURCE_DIR = REPO_ROOT.parent / "shared" / "data" / "sysndd"
DEFAULT_DATA_DIR = REPO_ROOT / "actors" / "data"

ATTRIBUTION = "SysNDD (sysndd.dbmr.unibe.ch), CC BY 4.0"
MAPPING_COLUMNS = ("symbol", "hgnc_id", "entrez_id", "ensembl_gene_id")
HGNC_ID = re.compile(r"^HGNC:[0-9]+$")
LIST_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _clean(value) -> str:
    # R's JSON writer spells missing values "NA" (and "null" in links): not ids.
    text = "" if value is None else str(value).strip()
    return "" if text in {"NA", "null"} else text


def build_symbol_rows(panels: dict, network: dict, phenotype_clusters: list) -> list[dict]:
    """One row per symbol, panels first so its symbols are each gene's display symbol."""
    candidates = [dict(row) for row in panels["data"]]
    candidates += [dict(node) for node in network.get("nodes", [])]
    candidates += [dict(gene) for cluster in phenotype_clusters for gene in cluster.get("identifiers", [])]

    rows: dict[str, dict] = {}
    for candidate in candidates:
        symbol, hgnc_id = _clean(candidate.get("symbol")), _clean(candidate.get("hgnc_id"))
        if not symbol or not HGNC_ID.match(hgnc_id):
            continue
        known = rows.get(symbol)
        if known and known["hgnc_id"] != hgnc_id:
            raise ValueError(f"symbol {symbol} names both {known['hgnc_id']} and {hgnc_id}")
        if known:
            # A later sample may know the Entrez/Ensembl ids an earlier one lacked.
            for column in ("entrez_id", "ensembl_gene_id"):
                known[column] = known[column] or _clean(candidate.get(column))
            continue
        rows[symbol] = {
            "symbol": symbol,
            "hgnc_id": hgnc_id,
            "entrez_id": _clean(candidate.get("entrez_id")),
            "ensembl_gene_id": _clean(candidate.get("ensembl_gene_id")),
        }
    return list(rows.values())


def list_order(upset: list[dict]) -> list[str]:
    """The list names in the order the sample writes each gene's sets.

    Every gene's ``sets`` follow one global order; recover it from the pairs seen so
    the shipped manifest reproduces the sample's output order.
    """
    before: dict[str, set[str]] = defaultdict(set)
    names: set[str] = set()
    for gene in upset:
        names.update(gene["sets"])
        for first, second in itertools.combinations(gene["sets"], 2):
            before[second].add(first)
    ordered: list[str] = []
    remaining = set(names)
    while remaining:
        ready = sorted(name for name in remaining if not (before[name] & remaining))
        if not ready:
            raise ValueError("the sample's set order is not consistent")
        ordered.append(ready[0])
        remaining.discard(ready[0])
    return ordered


def split_upset(upset: list[dict], display_symbol: dict[str, str]) -> dict[str, list[dict]]:
    lists: dict[str, list[dict]] = {name: [] for name in list_order(upset)}
    for gene in upset:
        hgnc_id = gene["name"]
        if not HGNC_ID.match(hgnc_id):
            raise ValueError(f"upset entry {hgnc_id!r} is not an HGNC id")
        for name in gene["sets"]:
            lists[name].append({"hgnc_id": hgnc_id, "symbol": display_symbol.get(hgnc_id, "")})
    for name in lists:
        if not LIST_NAME.match(name):
            raise ValueError(f"list name {name!r} cannot be a file name")
    return lists


def _csv_text(rows: list[dict], columns: tuple[str, ...], comment: str) -> str:
    buffer = io.StringIO()
    buffer.write(f"# {comment}\n")
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_symbol_mapping(rows: list[dict], output: Path) -> None:
    text = _csv_text(rows, MAPPING_COLUMNS, f"HGNC symbol mapping derived from {ATTRIBUTION}")
    # mtime=0, no file name in the header: a rebuild from the same samples is byte-identical.
    with (
        open(output, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(text.encode("utf-8"))


def write_comparison_lists(lists: dict[str, list[dict]], directory: Path) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {
        "attribution": ATTRIBUTION,
        "origin": "SysNDD API GET /api/comparisons/upset (OpenAPI sample), split per list",
        "format": "CSV, '#' comment lines, columns hgnc_id,symbol",
        "lists": [],
    }
    for name, rows in lists.items():
        rows = sorted(rows, key=lambda row: int(row["hgnc_id"].split(":")[1]))
        comment = f"external NDD gene list '{name}' as compared by {ATTRIBUTION}"
        (directory / f"{name}.csv").write_text(_csv_text(rows, ("hgnc_id", "symbol"), comment), "utf-8")
        manifest["lists"].append({"name": name, "file": f"{name}.csv", "genes": len(rows)})
    (directory / "sources.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return manifest


def _load(path: Path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE_DIR)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)

    rows = build_symbol_rows(
        _load(args.source_dir / "api_panels_browse_GET.json"),
        _load(args.source_dir / "api_analysis_network_edges_GET.json"),
        _load(args.source_dir / "api_analysis_phenotype_clustering_GET.json"),
    )
    mapping_path = args.data_dir / "hgnc_symbols.csv.gz"
    write_symbol_mapping(rows, mapping_path)

    display_symbol: dict[str, str] = {}
    for row in rows:
        display_symbol.setdefault(row["hgnc_id"], row["symbol"])
    lists = split_upset(_load(args.source_dir / "api_comparisons_upset_GET.json"), display_symbol)
    manifest = write_comparison_lists(lists, args.data_dir / "comparison_lists")

    print(f"wrote {mapping_path} ({mapping_path.stat().st_size:,} bytes): {len(rows)} symbols")
    for entry in manifest["lists"]:
        print(f"wrote comparison_lists/{entry['file']}: {entry['genes']} genes")


if __name__ == "__main__":
    main()
