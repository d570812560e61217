"""Tests of the NDD network clustering on the shipped SysNDD network.

The shipped network holds SysNDD's 10,000 strongest STRING edges among 2,259
genes, while SysNDD's labels come from its full network (68,541 edges,
6 clusters). The sparser graph splits into finer modules, so the expected
ranges below are those of this file, not of SysNDD's production output.
"""

import gzip
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from actors.analysis.network_clustering import (
    PROGRESS_STEPS,
    cluster_network,
    load_network,
    read_edge_csv,
)
from actors.data.builders import network as network_builder

UNKNOWN_GENE = "HGNC:0000000"


@pytest.fixture(scope="module")
def network():
    return load_network()


@pytest.fixture(scope="module")
def result(network):
    return cluster_network(network["nodes"], network["edges"])


@pytest.fixture(scope="module")
def symbol_of(network):
    return {node["hgnc_id"]: node["symbol"] for node in network["nodes"]}


def two_cliques_csv(path: Path) -> Path:
    """Two 5-gene cliques joined by one weak edge: the answer is obvious."""
    lines = ["source,target,confidence,note"]
    for clique in (range(1, 6), range(6, 11)):
        genes = [f"HGNC:{n}" for n in clique]
        lines += [f"{a},{b},0.9,x" for i, a in enumerate(genes) for b in genes[i + 1 :]]
    lines.append("HGNC:5,HGNC:6,0.15,bridge")
    lines.append("HGNC:2,HGNC:1,0.95,listed twice as STRING does")
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- the shipped data ---------------------------------------------------------


def test_shipped_network_holds_the_sysndd_sample(network):
    assert len(network["nodes"]) == 2259
    assert len(network["edges"]) == 10000
    assert network["attribution"] == "SysNDD (sysndd.dbmr.unibe.ch), CC BY 4.0"
    assert set(network["nodes"][0]) == {"hgnc_id", "symbol", "sysndd_cluster", "category"}
    assert set(network["edges"][0]) == {"source", "target", "confidence"}


def test_shipped_network_matches_a_rebuild_from_the_source(tmp_path, network):
    if not network_builder.DEFAULT_SOURCE.exists():
        pytest.skip(f"source data not present at {network_builder.DEFAULT_SOURCE}")
    rebuilt = tmp_path / "rebuilt.json.gz"
    network_builder.main(["--output", str(rebuilt)])
    assert load_network(rebuilt) == network


# --- clustering the full network ----------------------------------------------


def test_cluster_count_is_plausible(result):
    # SysNDD finds 6 on its dense full network; this sparser one gives ~20.
    assert 6 <= result["cluster_count"] <= 40
    assert result["cluster_count"] == len(result["clusters"])


def test_clusters_are_network_genes_sized_and_disjoint(result, symbol_of):
    seen = set()
    for cluster in result["clusters"]:
        ids = [gene["hgnc_id"] for gene in cluster["genes"]]
        assert cluster["size"] == len(ids) >= 10
        assert all(symbol_of[gene["hgnc_id"]] == gene["symbol"] for gene in cluster["genes"])
        assert seen.isdisjoint(ids)
        seen.update(ids)
    assert result["genes_clustered"] == len(seen)
    assert result["genes_clustered"] + result["genes_dropped"] == result["genes_in_network"] == 2259


def test_clusters_are_numbered_largest_first(result):
    sizes = [cluster["size"] for cluster in result["clusters"]]
    assert sizes == sorted(sizes, reverse=True)
    assert [cluster["cluster"] for cluster in result["clusters"]] == [
        str(n) for n in range(1, len(sizes) + 1)
    ]


def test_subclusters_nest_inside_their_cluster(result):
    assert any(cluster["subclusters"] for cluster in result["clusters"])
    for cluster in result["clusters"]:
        parent_genes = {gene["hgnc_id"] for gene in cluster["genes"]}
        seen = set()
        for number, sub in enumerate(cluster["subclusters"], start=1):
            ids = {gene["hgnc_id"] for gene in sub["genes"]}
            assert sub["cluster"] == f"{cluster['cluster']}.{number}"
            assert sub["size"] == len(ids) >= 10
            assert ids <= parent_genes
            assert seen.isdisjoint(ids)
            seen |= ids


def test_modularity_shows_real_community_structure(result):
    # ~0.77 on this network; a random partition scores about 0.
    assert 0.6 < result["modularity"] < 1


def test_agreement_with_sysndd_labels_beats_chance(result):
    agreement = result["sysndd_agreement"]
    assert agreement["genes_compared"] == 2259
    assert agreement["sysndd_cluster_count"] == 6
    # ~0.21: SysNDD clustered a denser graph; unrelated partitions give ~0.
    assert 0.1 < agreement["adjusted_rand_index"] <= 1


def test_parameters_record_what_was_used(result):
    assert result["parameters"] == {
        "algorithm": "leiden",
        "seed": 42,
        "min_cluster_size": 10,
        "subcluster": True,
        "weights": "STRING confidence",
        "genes_requested": None,
        "resolution": 1.0,
        "partition_type": "RBConfigurationVertexPartition",
        "n_iterations": 2,
    }


def test_result_is_json_serialisable(result):
    assert json.loads(json.dumps(result)) == result


def test_same_input_and_seed_give_the_same_result(network, result):
    again = cluster_network(network["nodes"], network["edges"])
    assert again == result


def test_same_seed_gives_the_same_result_in_a_fresh_process(result):
    # A fresh interpreter has a new hash seed and a new default RNG state, so
    # this catches any ordering or randomness that the seed does not pin down.
    script = (
        "import json\n"
        "from actors.analysis.network_clustering import cluster_network, load_network\n"
        "n = load_network()\n"
        "print(json.dumps(cluster_network(n['nodes'], n['edges'])))"
    )
    repo_root = Path(__file__).resolve().parents[2]
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=repo_root, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(output) == result


def test_seed_is_passed_to_leiden(network, result):
    other_seed = cluster_network(network["nodes"], network["edges"], seed=1, subcluster=False)
    assert other_seed["parameters"]["seed"] == 1
    assert [c["genes"] for c in other_seed["clusters"]] != [c["genes"] for c in result["clusters"]]


def test_higher_resolution_gives_more_clusters(network):
    def count(resolution):
        return cluster_network(
            network["nodes"],
            network["edges"],
            resolution=resolution,
            min_cluster_size=1,
            subcluster=False,
        )["cluster_count"]

    assert count(3.0) > count(1.0)


def test_min_cluster_size_one_keeps_every_gene(network):
    kept_all = cluster_network(
        network["nodes"], network["edges"], min_cluster_size=1, subcluster=False
    )
    assert kept_all["genes_dropped"] == 0
    assert kept_all["genes_clustered"] == 2259
    assert all(cluster["subclusters"] == [] for cluster in kept_all["clusters"])


def test_walktrap_clusters_the_network(network):
    walktrap = cluster_network(network["nodes"], network["edges"], algorithm="walktrap")
    assert walktrap["parameters"]["algorithm"] == "walktrap"
    assert walktrap["parameters"]["walktrap_steps"] == 4
    assert walktrap["cluster_count"] >= 6
    assert walktrap["modularity"] > 0.5
    assert all(cluster["size"] >= 10 for cluster in walktrap["clusters"])
    assert any(cluster["subclusters"] for cluster in walktrap["clusters"])


# --- restricting to a gene list -----------------------------------------------


def test_genes_restricts_the_network_and_reports_unknown_ids(network, result):
    requested = [gene["hgnc_id"] for cluster in result["clusters"][:2] for gene in cluster["genes"]]
    restricted = cluster_network(
        network["nodes"], network["edges"], genes=requested + [UNKNOWN_GENE], subcluster=False
    )
    clustered = {gene["hgnc_id"] for cluster in restricted["clusters"] for gene in cluster["genes"]}
    assert clustered and clustered <= set(requested)
    assert restricted["genes_in_network"] == len(requested)
    assert restricted["genes_unknown"] == [UNKNOWN_GENE]
    assert restricted["parameters"]["genes_requested"] == len(requested) + 1
    assert restricted["sysndd_agreement"]["genes_compared"] == len(requested)


# --- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"algorithm": "louvain"}, "unknown algorithm"),
        ({"resolution": 0}, "resolution"),
        ({"resolution": -1.0}, "resolution"),
        ({"resolution": math.nan}, "resolution"),
        ({"resolution": "1"}, "resolution"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"min_cluster_size": 0}, "min_cluster_size"),
        ({"subcluster": "yes"}, "subcluster"),
        ({"genes": "HGNC:9839"}, "list of HGNC ids"),
        ({"genes": []}, "genes is empty"),
        ({"genes": [9839]}, "HGNC id strings"),
        ({"genes": [UNKNOWN_GENE]}, "at least 2"),
        ({"progress": "not callable"}, "progress"),
    ],
)
def test_bad_parameters_raise_value_error(network, options, message):
    with pytest.raises(ValueError, match=message):
        cluster_network(network["nodes"], network["edges"], **options)


def test_genes_without_edges_between_them_raise_value_error(network):
    neighbours = {edge["source"] for edge in network["edges"]} | {
        edge["target"] for edge in network["edges"]
    }
    first = network["edges"][0]["source"]
    linked_to_first = {e["target"] for e in network["edges"] if e["source"] == first} | {
        e["source"] for e in network["edges"] if e["target"] == first
    }
    stranger = next(
        gene for gene in sorted(neighbours) if gene != first and gene not in linked_to_first
    )
    with pytest.raises(ValueError, match="at least 2"):
        cluster_network(network["nodes"], network["edges"], genes=[first, stranger])


@pytest.mark.parametrize(
    ("edge", "message"),
    [
        ({"source": "HGNC:1", "target": "HGNC:99", "confidence": 0.9}, "not among the nodes"),
        ({"source": "HGNC:1", "target": "HGNC:2", "confidence": 1.5}, r"not in \(0, 1\]"),
        ({"source": "HGNC:1", "target": "HGNC:2", "confidence": "high"}, "not a number"),
        ({"source": "HGNC:1", "target": "HGNC:1", "confidence": 0.9}, "itself"),
        ({"source": "", "target": "HGNC:2", "confidence": 0.9}, "source"),
    ],
)
def test_bad_edges_raise_value_error(edge, message):
    nodes = [{"hgnc_id": "HGNC:1"}, {"hgnc_id": "HGNC:2"}, {"hgnc_id": "HGNC:3"}]
    edges = [{"source": "HGNC:2", "target": "HGNC:3", "confidence": 0.9}, edge]
    with pytest.raises(ValueError, match=message):
        cluster_network(nodes, edges, min_cluster_size=1)


def test_duplicate_nodes_raise_value_error():
    nodes = [{"hgnc_id": "HGNC:1"}, {"hgnc_id": "HGNC:1"}]
    with pytest.raises(ValueError, match="listed twice"):
        cluster_network(nodes, [{"source": "HGNC:1", "target": "HGNC:2", "confidence": 0.9}])


# --- edge CSV -----------------------------------------------------------------


def test_read_edge_csv_reads_a_valid_file(tmp_path):
    edges = read_edge_csv(two_cliques_csv(tmp_path / "edges.csv"))
    assert len(edges) == 22
    assert edges[0] == {"source": "HGNC:1", "target": "HGNC:2", "confidence": 0.9}
    assert all(isinstance(edge["confidence"], float) for edge in edges)


@pytest.mark.parametrize("algorithm", ["leiden", "walktrap"])
def test_edge_csv_clusters_into_its_two_cliques(tmp_path, algorithm):
    edges = read_edge_csv(two_cliques_csv(tmp_path / "edges.csv"))
    found = cluster_network(None, edges, algorithm=algorithm, min_cluster_size=2, subcluster=False)
    members = sorted(sorted(gene["hgnc_id"] for gene in c["genes"]) for c in found["clusters"])
    assert members == [
        sorted(f"HGNC:{n}" for n in range(1, 6)),
        sorted(f"HGNC:{n}" for n in range(6, 11)),
    ]
    assert found["sysndd_agreement"]["adjusted_rand_index"] is None


@pytest.mark.parametrize("algorithm", ["leiden", "walktrap"])
def test_confidence_weights_decide_the_clusters(algorithm):
    # Every pair of 8 genes is linked, so only the confidences hold structure:
    # unweighted, no split beats one cluster of 8 (its modularity is <= 0).
    genes = [f"HGNC:{n}" for n in range(1, 9)]
    edges = [
        {"source": a, "target": b, "confidence": 0.99 if (i < 4) == (j < 4) else 0.01}
        for i, a in enumerate(genes)
        for j, b in enumerate(genes)
        if i < j
    ]
    found = cluster_network(None, edges, algorithm=algorithm, min_cluster_size=2, subcluster=False)
    members = sorted(sorted(gene["hgnc_id"] for gene in c["genes"]) for c in found["clusters"])
    assert members == [genes[:4], genes[4:]]
    assert found["modularity"] > 0.4


@pytest.mark.parametrize(
    ("labels", "expected_index"),
    [
        (["A"] * 5 + ["B"] * 5, 1.0),
        # One gene on the wrong side; value as sklearn.metrics.adjusted_rand_score gives it.
        (["A"] * 4 + ["B"] * 6, 0.5970149253731343),
    ],
)
def test_sysndd_agreement_is_the_adjusted_rand_index(tmp_path, labels, expected_index):
    edges = read_edge_csv(two_cliques_csv(tmp_path / "edges.csv"))
    nodes = [
        {"hgnc_id": f"HGNC:{n}", "sysndd_cluster": label} for n, label in enumerate(labels, start=1)
    ]
    agreement = cluster_network(nodes, edges, min_cluster_size=2)["sysndd_agreement"]
    assert agreement["adjusted_rand_index"] == pytest.approx(expected_index)
    assert agreement["genes_compared"] == 10
    assert agreement["sysndd_cluster_count"] == 2


def test_a_pair_listed_twice_keeps_its_highest_confidence(tmp_path):
    edges = read_edge_csv(two_cliques_csv(tmp_path / "edges.csv"))
    bridge_again = {"source": "HGNC:6", "target": "HGNC:5", "confidence": 0.1}
    once = cluster_network(None, edges, min_cluster_size=2)
    twice = cluster_network(None, edges + [bridge_again], min_cluster_size=2)
    assert twice["modularity"] == pytest.approx(once["modularity"])
    assert twice["clusters"] == once["clusters"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "file is empty"),
        ("source,target\nHGNC:1,HGNC:2\n", "lacks column.*confidence"),
        ("source,target,confidence\n", "no edges"),
        (
            "source,target,confidence\nHGNC:1,HGNC:2,0.9\nHGNC:1,HGNC:3,abc\n",
            "line 3.*not a number",
        ),
        ("source,target,confidence\nHGNC:1,HGNC:2,900\n", "line 2.*divide it by 1000"),
        ("source,target,confidence\nHGNC:1,HGNC:2,0\n", r"line 2.*not in \(0, 1\]"),
        ("source,target,confidence\nHGNC:1,HGNC:2\n", "line 2: 2 fields, header has 3"),
        ("source,target,confidence\nHGNC:1,,0.9\n", "line 2.*target"),
        ("source,target,confidence\nHGNC:1,HGNC:1,0.9\n", "line 2.*itself"),
    ],
)
def test_read_edge_csv_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_edge_csv(path)


def test_read_edge_csv_rejects_non_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("source,target,confidence\nHGNC:1,G\xe9ne,0.9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        read_edge_csv(path)


def test_load_network_rejects_a_file_without_nodes_and_edges(tmp_path):
    path = tmp_path / "other.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump({"nodes": []}, handle)
    with pytest.raises(ValueError, match="'nodes' and 'edges'"):
        load_network(path)


# --- progress -----------------------------------------------------------------


def test_progress_reports_every_step_in_order(network):
    calls = []
    found = cluster_network(
        network["nodes"],
        network["edges"],
        progress=lambda step, current, total, message="": calls.append(
            (step, current, total, message)
        ),
    )
    steps_in_order = list(dict.fromkeys(step for step, *_ in calls))
    assert steps_in_order == list(PROGRESS_STEPS)
    currents = [current for _, current, _, _ in calls]
    assert currents == sorted(currents)
    assert {total for _, _, total, _ in calls} == {len(PROGRESS_STEPS)}
    assert calls[-1][:3] == ("summarise", len(PROGRESS_STEPS), len(PROGRESS_STEPS))
    # One call opening the step, then one per cluster being sub-clustered.
    assert sum(step == "subcluster" for step, *_ in calls) == found["cluster_count"] + 1


def test_progress_reports_every_step_without_subclustering(network):
    steps = []
    cluster_network(
        network["nodes"],
        network["edges"],
        subcluster=False,
        progress=lambda step, current, total, message="": steps.append(step),
    )
    assert steps == list(PROGRESS_STEPS)


def test_progress_callback_can_abort_the_run(network):
    class Cancelled(Exception):
        pass

    def cancel_at_cluster(step, current, total, message=""):
        if step == "cluster":
            raise Cancelled

    with pytest.raises(Cancelled):
        cluster_network(network["nodes"], network["edges"], progress=cancel_at_cluster)
