"""``phenotype_clustering``: SysNDD's MCA + HCPC on the entity x phenotype matrix."""

from __future__ import annotations

from actors.analysis.phenotype_clustering import cluster_phenotypes, load_matrix
from actors.errors import JobError
from actors.progress import callback


def run(params: dict, *, matrix=None, quali_sup: tuple[str, ...] = ("inheritance",)) -> dict:
    """The shipped matrix unless ``matrix`` (a DataFrame from read_matrix_csv, with its
    supplementary columns named in ``quali_sup``) is given."""
    if params["min_clusters"] > params["max_clusters"]:
        raise JobError("min_clusters must not exceed max_clusters", code="INVALID_PARAMS")
    table = load_matrix() if matrix is None else matrix
    try:
        return cluster_phenotypes(
            table,
            quali_sup=quali_sup,
            ncp=params["ncp"],
            min_clusters=params["min_clusters"],
            max_clusters=params["max_clusters"],
            progress=callback,
        )
    except ValueError as e:
        raise JobError(str(e), code="INVALID_PARAMS")
