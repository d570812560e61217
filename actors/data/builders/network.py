"""Build actors/data/ndd_network.json.gz from SysNDD's network_edges API sample.

    python -m actors.data.builders.network [--source PATH] [--output PATH]

The shipped file keeps only what clustering needs: per gene its HGNC id,
symbol, SysNDD's own Leiden cluster (the reference labels) and curation
category; per STRING edge its two HGNC ids and confidence (0..1).

Data: SysNDD (sysndd.dbmr.unibe.ch), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SOURCE = (
    REPO_ROOT.parent / "shared" / "data" / "sysndd" / "api_analysis_network_edges_GET.json"
)
DEFAULT_OUTPUT = REPO_ROOT / "actors" / "data" / "ndd_network.json.gz"

ATTRIBUTION = "SysNDD (sysndd.dbmr.unibe.ch), CC BY 4.0"


def build_network(api_response: dict) -> dict:
    """Reduce a /api/analysis/network_edges response to the shipped shape."""
    nodes = [
        {
            "hgnc_id": node["hgnc_id"],
            "symbol": node["symbol"],
            "sysndd_cluster": node["cluster"],
            "category": node["category"],
        }
        for node in api_response["nodes"]
    ]
    known_ids = {node["hgnc_id"] for node in nodes}
    if len(known_ids) != len(nodes):
        raise ValueError("source has duplicate hgnc_id entries in 'nodes'")

    edges = []
    for edge in api_response["edges"]:
        if edge["source"] not in known_ids or edge["target"] not in known_ids:
            raise ValueError(f"edge {edge['source']}-{edge['target']} names a gene not in 'nodes'")
        edges.append(
            {"source": edge["source"], "target": edge["target"], "confidence": edge["confidence"]}
        )

    metadata = api_response.get("metadata", {})
    return {
        "attribution": ATTRIBUTION,
        "origin": "SysNDD API GET /api/analysis/network_edges (OpenAPI sample)",
        "string_version": metadata.get("string_version"),
        # The API ships only the strongest edges of the full STRING network, and
        # SysNDD computed its cluster labels on that full network: say so, because
        # it bounds how closely a re-clustering of this file can agree with them.
        "min_confidence": metadata.get("min_confidence"),
        "full_network_edge_count": metadata.get("total_edges"),
        "full_network_gene_count": metadata.get("genes_with_string"),
        "node_count": len(nodes),
        "edge_count": len(edges),
        "nodes": nodes,
        "edges": edges,
    }


def write_network(network: dict, output: Path) -> None:
    payload = json.dumps(network, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # mtime=0 and no file name in the header: rebuilding from the same source
    # gives byte-identical output, so the committed file only changes with the data.
    with (
        open(output, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    with open(args.source, encoding="utf-8") as handle:
        network = build_network(json.load(handle))
    write_network(network, args.output)
    print(
        f"wrote {args.output} ({args.output.stat().st_size:,} bytes): "
        f"{network['node_count']} genes, {network['edge_count']} edges"
    )


if __name__ == "__main__":
    main()
