"""Functional clustering of the NDD gene network, as SysNDD does it.

SysNDD (api/functions/analyses-functions.R, gen_string_clust_obj) takes the
STRING v11.5 graph induced by its NDD genes, clusters it with igraph's
cluster_leiden(objective_function = "modularity", resolution = 1,
n_iterations = 2) under set.seed(42), keeps clusters of at least 10 genes and
clusters each kept cluster once more the same way. Walktrap (steps = 4) is its
alternative. This module does the same on plain lists of dicts:

* Leiden runs through leidenalg with RBConfigurationVertexPartition. At
  resolution 1 its quality function is exactly modularity (igraph's
  "modularity" objective), and unlike ModularityVertexPartition it accepts a
  resolution parameter, so other resolutions mean what they mean in igraph.
* Edge weights are the STRING confidences (0..1). SysNDD's R call passes no
  weights argument, so igraph weights there only if the graph has an edge
  attribute named "weight"; on this network's 0.90-0.999 confidences the
  weighted and unweighted partitions hardly differ.
* leidenalg has no counterpart of igraph's beta (0.01 in SysNDD, the
  randomness of the refinement step); the seed alone makes runs repeatable.
* The SysNDD agreement is igraph.compare_communities(method="adjusted_rand"),
  the same index as sklearn.metrics.adjusted_rand_score without loading
  scikit-learn (about 100 MiB of resident memory per worker process).

Data shipped with the package: SysNDD (sysndd.dbmr.unibe.ch), CC BY 4.0.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import igraph
import leidenalg

from actors.analysis.progress import Progress, step_reporter

ALGORITHMS = ("leiden", "walktrap")
PROGRESS_STEPS = ("load", "build_graph", "cluster", "subcluster", "summarise")

# SysNDD's settings for the two algorithms (see the module docstring).
LEIDEN_ITERATIONS = 2
WALKTRAP_STEPS = 4

SHIPPED_NETWORK = "ndd_network.json.gz"
EDGE_CSV_COLUMNS = ("source", "target", "confidence")



def load_network(path: str | Path | None = None) -> dict:
    """Load a network file ({"nodes": [...], "edges": [...], ...}).

    Without a path, the network shipped in actors/data (built by
    ``python -m actors.data.builders.network``). ``.gz`` files are gunzipped.
    """
    if path is None:
        source = resources.files("actors.data").joinpath(SHIPPED_NETWORK)
        with source.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
            network = json.load(text)
    else:
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as text:
            network = json.load(text)

    if not isinstance(network, dict) or not {"nodes", "edges"} <= network.keys():
        raise ValueError(
            f"{path or SHIPPED_NETWORK}: expected a JSON object with 'nodes' and 'edges'"
        )
    return network


def read_edge_csv(path: str | Path) -> list[dict]:
    """Read an edge list CSV with header ``source,target,confidence``.

    Confidence is STRING's score scaled to 0..1. Extra columns are ignored.
    Every problem is reported as a ValueError naming the file line.
    """
    path = Path(path)
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error.reason})") from None

    if not rows:
        raise ValueError(f"{path}: file is empty; expected header {','.join(EDGE_CSV_COLUMNS)}")
    header = [column.strip().lower() for column in rows[0]]
    missing = [column for column in EDGE_CSV_COLUMNS if column not in header]
    if missing:
        raise ValueError(
            f"{path}: header {','.join(rows[0])!r} lacks column(s) {', '.join(missing)}; "
            f"expected {','.join(EDGE_CSV_COLUMNS)}"
        )
    position = {column: header.index(column) for column in EDGE_CSV_COLUMNS}

    edges = []
    for line_number, row in enumerate(rows[1:], start=2):
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {line_number}: {len(row)} fields, header has {len(header)}"
            )
        edge = {column: row[index].strip() for column, index in position.items()}
        try:
            edges.append(_checked_edge(edge))
        except ValueError as error:
            raise ValueError(f"{path}, line {line_number}: {error}") from None

    if not edges:
        raise ValueError(f"{path}: no edges below the header")
    return edges


def cluster_network(
    nodes: list[dict] | None,
    edges: list[dict],
    *,
    algorithm: str = "leiden",
    resolution: float = 1.0,
    seed: int = 42,
    min_cluster_size: int = 10,
    subcluster: bool = True,
    genes: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> dict:
    """Cluster a gene network and summarise the clusters as plain JSON data.

    ``nodes`` are dicts with ``hgnc_id`` and optionally ``symbol`` and
    ``sysndd_cluster`` (the reference labels); None derives the nodes from the
    edges. ``edges`` are dicts with ``source``, ``target`` (HGNC ids) and
    ``confidence`` in (0, 1]; a pair listed twice keeps its highest confidence.
    ``genes`` restricts the network to those HGNC ids first; ids not in the
    network are ignored and listed in ``genes_unknown``.

    ``progress(step, current, total, message)`` is called as each step of
    PROGRESS_STEPS starts (current = 1-based step number, total = number of
    steps) and once more per cluster while sub-clustering. An exception it
    raises aborts the run, which is how a caller can cancel.
    """
    _check_parameters(algorithm, resolution, seed, min_cluster_size, subcluster, genes, progress)
    genes = None if genes is None else list(genes)
    report = step_reporter(progress, PROGRESS_STEPS)

    report("load", f"checking {len(edges)} edges")
    edges = [_checked_edge(edge) for edge in edges]
    nodes = _checked_nodes(nodes, edges)
    genes_unknown: list[str] = []
    if genes is not None:
        nodes, edges, genes_unknown = _restrict_to_genes(nodes, edges, genes)

    report("build_graph", f"{len(nodes)} genes")
    graph = _build_graph(nodes, edges)
    connected_genes = sum(1 for degree in graph.degree() if degree > 0)
    if connected_genes < 2:
        raise ValueError(
            f"only {connected_genes} gene(s) with an edge to another gene remain; "
            "need at least 2 to cluster"
        )

    report("cluster", f"{algorithm} on {graph.vcount()} genes, {graph.ecount()} edges")
    membership = _partition(graph, algorithm, resolution, seed)
    modularity = graph.modularity(membership, weights="weight")
    kept_groups = _groups_by_size(membership, min_cluster_size)

    report("subcluster", "skipped" if not subcluster else f"{len(kept_groups)} clusters")
    clusters = []
    for number, members in enumerate(kept_groups, start=1):
        cluster_id = str(number)
        subclusters = []
        if subcluster:
            report("subcluster", f"cluster {number} of {len(kept_groups)}")
            cluster_graph = graph.induced_subgraph(members)
            sub_membership = _partition(cluster_graph, algorithm, resolution, seed)
            for sub_number, sub_members in enumerate(
                _groups_by_size(sub_membership, min_cluster_size), start=1
            ):
                subclusters.append(
                    _cluster_record(
                        f"{cluster_id}.{sub_number}", [members[i] for i in sub_members], nodes
                    )
                )
        clusters.append({**_cluster_record(cluster_id, members, nodes), "subclusters": subclusters})

    report("summarise", f"{len(clusters)} clusters kept")
    genes_clustered = sum(cluster["size"] for cluster in clusters)
    return {
        "clusters": clusters,
        "cluster_count": len(clusters),
        "modularity": modularity,
        "genes_in_network": graph.vcount(),
        "genes_clustered": genes_clustered,
        "genes_dropped": graph.vcount() - genes_clustered,
        "genes_unknown": genes_unknown,
        "parameters": _parameters_used(
            algorithm, resolution, seed, min_cluster_size, subcluster, genes
        ),
        "sysndd_agreement": _sysndd_agreement(nodes, membership),
    }


def _check_parameters(
    algorithm, resolution, seed, min_cluster_size, subcluster, genes, progress
) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float)):
        raise ValueError(f"resolution must be a number, got {resolution!r}")
    if not math.isfinite(resolution) or resolution <= 0:
        raise ValueError(f"resolution must be a finite number > 0, got {resolution!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(min_cluster_size, bool)
        or not isinstance(min_cluster_size, int)
        or min_cluster_size < 1
    ):
        raise ValueError(f"min_cluster_size must be an integer >= 1, got {min_cluster_size!r}")
    if not isinstance(subcluster, bool):
        raise ValueError(f"subcluster must be true or false, got {subcluster!r}")
    if genes is not None and (isinstance(genes, (str, bytes)) or not isinstance(genes, Iterable)):
        raise ValueError(f"genes must be a list of HGNC ids, got {genes!r}")
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable or None")


def _checked_edge(edge: dict) -> dict:
    """One edge as {source, target, confidence: float}, or a ValueError saying what is wrong."""
    if not isinstance(edge, dict):
        raise ValueError(f"an edge must be a mapping with source, target, confidence; got {edge!r}")
    source, target = edge.get("source"), edge.get("target")
    for name, gene in (("source", source), ("target", target)):
        if not isinstance(gene, str) or not gene.strip():
            raise ValueError(f"edge {name} must be a non-empty gene id, got {gene!r}")
    if source == target:
        raise ValueError(f"edge joins {source} to itself")

    raw_confidence = edge.get("confidence")
    try:
        confidence = float(raw_confidence)
    except (TypeError, ValueError):
        raise ValueError(
            f"confidence {raw_confidence!r} of edge {source}-{target} is not a number"
        ) from None
    if not 0 < confidence <= 1:
        hint = " (a STRING combined_score? divide it by 1000)" if 1 < confidence <= 1000 else ""
        raise ValueError(
            f"confidence {raw_confidence!r} of edge {source}-{target} is not in (0, 1]{hint}"
        )
    return {"source": source, "target": target, "confidence": confidence}


def _checked_nodes(nodes: list[dict] | None, edges: list[dict]) -> list[dict]:
    if nodes is None:
        # A bare edge list: the genes are its endpoints, in order of appearance.
        ids = dict.fromkeys(
            gene for edge in edges for gene in (edge.get("source"), edge.get("target"))
        )
        return [{"hgnc_id": gene, "symbol": None, "sysndd_cluster": None} for gene in ids]

    checked, seen = [], set()
    for node in nodes:
        gene = node.get("hgnc_id") if isinstance(node, dict) else None
        if not isinstance(gene, str) or not gene:
            raise ValueError(f"every node needs an hgnc_id, got {node!r}")
        if gene in seen:
            raise ValueError(f"node {gene} is listed twice")
        seen.add(gene)
        checked.append(
            {
                "hgnc_id": gene,
                "symbol": node.get("symbol"),
                "sysndd_cluster": node.get("sysndd_cluster"),
            }
        )

    strangers = sorted(
        {g for edge in edges for g in (edge.get("source"), edge.get("target"))} - seen, key=str
    )
    if strangers:
        shown = ", ".join(map(str, strangers[:5])) + (" ..." if len(strangers) > 5 else "")
        raise ValueError(f"{len(strangers)} edge endpoint(s) are not among the nodes: {shown}")
    return checked


def _restrict_to_genes(nodes: list[dict], edges: list[dict], genes: Iterable[str]):
    bad_ids = [gene for gene in genes if not isinstance(gene, str)]
    if bad_ids:
        raise ValueError(f"genes must be HGNC id strings, got {bad_ids[:5]!r}")
    requested = dict.fromkeys(genes)
    if not requested:
        raise ValueError("genes is empty; pass None to cluster the whole network")
    known = {node["hgnc_id"] for node in nodes}
    unknown = [gene for gene in requested if gene not in known]
    kept_nodes = [node for node in nodes if node["hgnc_id"] in requested]
    kept_edges = [
        edge for edge in edges if edge["source"] in requested and edge["target"] in requested
    ]
    return kept_nodes, kept_edges, unknown


def _build_graph(nodes: list[dict], edges: list[dict]) -> igraph.Graph:
    """Undirected graph, one vertex per node (same order), weight = confidence."""
    index = {node["hgnc_id"]: position for position, node in enumerate(nodes)}
    graph = igraph.Graph(
        n=len(nodes),
        edges=[(index[edge["source"]], index[edge["target"]]) for edge in edges],
        edge_attrs={"weight": [edge["confidence"] for edge in edges]},
    )
    # STRING files list each interaction in both directions; one edge per pair,
    # at its highest confidence, so a pair listed twice is not counted double.
    graph.simplify(multiple=True, loops=True, combine_edges={"weight": "max"})
    return graph


def _partition(graph: igraph.Graph, algorithm: str, resolution: float, seed: int) -> list[int]:
    if algorithm == "walktrap":
        # Cut the dendrogram where weighted modularity peaks, as R's cluster_walktrap does.
        return (
            graph.community_walktrap(weights="weight", steps=WALKTRAP_STEPS)
            .as_clustering()
            .membership
        )
    partition = leidenalg.find_partition(
        graph,
        leidenalg.RBConfigurationVertexPartition,
        weights="weight",
        resolution_parameter=resolution,
        n_iterations=LEIDEN_ITERATIONS,
        seed=seed,
    )
    return partition.membership


def _groups_by_size(membership: list[int], min_size: int) -> list[list[int]]:
    """Vertex lists of the communities with >= min_size members, largest first."""
    groups: dict[int, list[int]] = {}
    for vertex, community in enumerate(membership):
        groups.setdefault(community, []).append(vertex)
    # Ties broken by the first member, so numbering does not depend on community ids.
    ordered = sorted(groups.values(), key=lambda members: (-len(members), members[0]))
    return [members for members in ordered if len(members) >= min_size]


def _cluster_record(cluster_id: str, members: list[int], nodes: list[dict]) -> dict:
    genes = sorted(
        ({"hgnc_id": nodes[i]["hgnc_id"], "symbol": nodes[i]["symbol"]} for i in members),
        key=lambda gene: (gene["symbol"] or "", gene["hgnc_id"]),
    )
    return {"cluster": cluster_id, "size": len(genes), "genes": genes}


def _parameters_used(algorithm, resolution, seed, min_cluster_size, subcluster, genes) -> dict:
    parameters = {
        "algorithm": algorithm,
        "seed": seed,
        "min_cluster_size": min_cluster_size,
        "subcluster": subcluster,
        "weights": "STRING confidence",
        "genes_requested": None if genes is None else len(set(genes)),
    }
    if algorithm == "leiden":
        parameters |= {
            "resolution": resolution,
            "partition_type": "RBConfigurationVertexPartition",
            "n_iterations": LEIDEN_ITERATIONS,
        }
    else:
        parameters |= {"resolution": None, "walktrap_steps": WALKTRAP_STEPS}
    return parameters


def _sysndd_agreement(nodes: list[dict], membership: list[int]) -> dict:
    """Adjusted Rand index between this partition and SysNDD's labels.

    Compared on every gene that carries a SysNDD label, using the partition
    before small clusters are dropped (each small cluster counts as its own
    label), so dropped genes still count as disagreement where they disagree.
    """
    labelled = [
        (node["sysndd_cluster"], community)
        for node, community in zip(nodes, membership, strict=True)
        if node["sysndd_cluster"] is not None
    ]
    agreement = {
        "adjusted_rand_index": None,
        "genes_compared": len(labelled),
        "sysndd_cluster_count": len({label for label, _ in labelled}),
        "method": "igraph.compare_communities adjusted_rand, full partition before the size filter",
    }
    if len(labelled) >= 2:
        # igraph wants integer memberships; SysNDD labels may be any value.
        label_numbers: dict = {}
        reference = [label_numbers.setdefault(label, len(label_numbers)) for label, _ in labelled]
        ours = [community for _, community in labelled]
        index = igraph.compare_communities(reference, ours, method="adjusted_rand")
        # NaN when both sides are trivial (one cluster, or all singletons): undefined.
        agreement["adjusted_rand_index"] = None if math.isnan(index) else index
    return agreement
