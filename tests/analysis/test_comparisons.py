"""update_comparisons: shipped lists, local files, HTTP sources, and all-or-nothing replacement."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from actors.analysis.comparisons import (
    ComparisonSourceError,
    default_sources,
    read_upset,
    update_comparisons,
)
from actors.data.builders.hgnc_symbols import DEFAULT_SOURCE_DIR
from actors.datastore.base import make_engine
from actors.datastore.models import ComparisonListMetadata, ComparisonMembership
from tests.support import fake_apis

REFERENCE_UPSET = DEFAULT_SOURCE_DIR / "api_comparisons_upset_GET.json"


# --- databases: SQLite always, PostgreSQL when reachable ---------------------------






# --- a local HTTP server for URL sources -------------------------------------------


@pytest.fixture
def http_files():
    """Serves ``files[path] = bytes``; any other path is a 404."""
    files: dict[str, bytes] = {}
    server = fake_apis.files(files)
    yield files, server.url
    server.close()


def stored(engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {
            tuple(row)
            for row in conn.execute(select(ComparisonMembership.hgnc_id, ComparisonMembership.list_name))
        }


# --- tests ------------------------------------------------------------------------


def test_shipped_lists_reproduce_the_upset_shape(engine):
    steps = []
    result = update_comparisons(engine, progress=lambda *args: steps.append(args))

    manifest_counts = {
        name: len(Path(path).read_text().splitlines()) - 2 for name, path in default_sources().items()
    }
    metadata = result["metadata"]
    assert metadata["sources_count"] == 8
    assert metadata["last_refresh_status"] == "success"
    assert {entry["name"]: entry["row_count"] for entry in metadata["lists"]} == manifest_counts
    assert metadata["rows_imported"] == sum(manifest_counts.values())
    assert len(result["upset"]) == metadata["genes"] == 4977
    assert result["upset"][1] == {
        "name": "HGNC:10003",
        "sets": ["SysNDD", "gene2phenotype", "panelapp", "sfari"],
    }
    assert read_upset(engine) == result["upset"]
    assert {step for step, *_ in steps} >= {"load", "write", "done"}
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ComparisonListMetadata)) == 8
        symbol = conn.scalar(
            select(ComparisonMembership.symbol).where(ComparisonMembership.hgnc_id == "HGNC:20")
        )
    assert symbol == "AARS1"


@pytest.mark.skipif(not REFERENCE_UPSET.is_file(), reason="SysNDD reference sample not available")
def test_shipped_lists_match_the_reference_sample(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    result = update_comparisons(engine)
    assert result["upset"] == json.loads(REFERENCE_UPSET.read_text())


def test_local_file_sources_in_every_format(engine, tmp_path):
    (tmp_path / "symbols.csv").write_text(
        "# a comment line\nGene_Symbol,inheritance\nAARS1,AR\naass,AR\nNOT_A_GENE,AD\n\nKCNK4,AD\n"
    )
    (tmp_path / "ids.tsv").write_text("hgnc_id\tnote\nHGNC:20\tx\n17366\ty\n")
    (tmp_path / "genes.json.gz").write_bytes(gzip.compress(json.dumps(["HGNC:6279", "SLC12A5"]).encode()))
    (tmp_path / "objects.json").write_text(json.dumps({"data": [{"symbol": "CPAP"}, {"symbol": "CENPJ"}]}))

    result = update_comparisons(
        engine,
        sources={
            "symbols": str(tmp_path / "symbols.csv"),
            "ids": str(tmp_path / "ids.tsv"),
            "gz": (tmp_path / "genes.json.gz").as_uri(),
            "renamed": str(tmp_path / "objects.json"),
        },
    )

    lists = {entry["name"]: entry for entry in result["metadata"]["lists"]}
    assert (lists["symbols"]["row_count"], lists["symbols"]["unmapped"]) == (3, 1)
    assert lists["ids"]["row_count"] == 2
    assert lists["renamed"]["row_count"] == 1  # the old and new symbol are one gene
    assert stored(engine) == {
        ("HGNC:20", "symbols"), ("HGNC:17366", "symbols"), ("HGNC:6279", "symbols"),
        ("HGNC:20", "ids"), ("HGNC:17366", "ids"),
        ("HGNC:6279", "gz"), ("HGNC:13818", "gz"),
        ("HGNC:17272", "renamed"),
    }  # fmt: skip
    assert {"name": "HGNC:20", "sets": ["symbols", "ids"]} in result["upset"]


def test_http_source(engine, http_files):
    files, base = http_files
    files["/lists/g2p.csv"] = b"symbol\nAARS1\nKCNK4\n"
    files["/lists/other"] = b'[{"hgnc_id": "HGNC:13818"}]'  # no suffix: detected from the content

    result = update_comparisons(
        engine, sources={"g2p": f"{base}/lists/g2p.csv", "other": f"{base}/lists/other"}
    )

    assert result["upset"] == [
        {"name": "HGNC:13818", "sets": ["other"]},
        {"name": "HGNC:20", "sets": ["g2p"]},
        {"name": "HGNC:6279", "sets": ["g2p"]},
    ]


def test_gene_universe_keeps_only_its_genes(engine, tmp_path):
    (tmp_path / "list.csv").write_text("symbol\nAARS1\nKCNK4\n")
    result = update_comparisons(engine, sources={"a": str(tmp_path / "list.csv")}, gene_universe={"HGNC:20"})
    assert result["upset"] == [{"name": "HGNC:20", "sets": ["a"]}]
    assert result["metadata"]["lists"][0]["outside_universe"] == 1


def test_bad_source_leaves_the_previous_table(engine, tmp_path, http_files):
    files, base = http_files
    (tmp_path / "good.csv").write_text("symbol\nAARS1\n")
    update_comparisons(engine, sources={"old": str(tmp_path / "good.csv")})
    before = stored(engine)

    for bad in (f"{base}/missing.csv", str(tmp_path / "absent.csv"), "data:,"):
        with pytest.raises(ComparisonSourceError) as raised:
            update_comparisons(engine, sources={"new": str(tmp_path / "good.csv"), "broken": bad})
        assert raised.value.list_name == "broken"
        assert stored(engine) == before

    (tmp_path / "no_gene_column.csv").write_text("name,score\nAARS1,1\n")
    (tmp_path / "nothing_known.csv").write_text("symbol\nNOT_A_GENE\n")
    for bad in ("no_gene_column.csv", "nothing_known.csv"):
        with pytest.raises(ComparisonSourceError):
            update_comparisons(engine, sources={"broken": str(tmp_path / bad)})
        assert stored(engine) == before


def test_failure_during_the_write_rolls_back(engine, tmp_path):
    (tmp_path / "old.csv").write_text("symbol\nAARS1\n")
    update_comparisons(engine, sources={"old": str(tmp_path / "old.csv")})
    before = stored(engine)

    def fail_mid_write(step, current, total, message=""):
        # Called after the old rows were deleted and the first chunk inserted.
        if step == "write" and current > 0:
            raise RuntimeError("worker killed mid-write")

    with pytest.raises(RuntimeError):
        update_comparisons(engine, sources=None, progress=fail_mid_write)
    assert stored(engine) == before
    assert read_upset(engine) == [{"name": "HGNC:20", "sets": ["old"]}]
