"""``clustering``: Leiden (or walktrap) communities of the NDD gene network."""

from __future__ import annotations

from actors.analysis.network_clustering import cluster_network, load_network
from actors.errors import JobError
from actors.progress import callback


def run(params: dict, *, nodes: list[dict] | None = None, edges: list[dict] | None = None) -> dict:
    """The shipped network unless ``edges`` (and optionally ``nodes``) are given."""
    if edges is None:
        network = load_network()
        nodes, edges = network["nodes"], network["edges"]
    try:
        return cluster_network(
            nodes,
            edges,
            algorithm=params["algorithm"],
            resolution=params["resolution"],
            seed=params["seed"],
            min_cluster_size=params["min_cluster_size"],
            genes=params.get("genes"),
            progress=callback,
        )
    except ValueError as e:
        raise JobError(str(e), code="INVALID_PARAMS")
