"""Phenotype clustering of NDD entities, as SysNDD does it with FactoMineR.

SysNDD (api/functions/analyses-functions.R, gen_mca_clust_obj) runs on an
entity x phenotype matrix of yes/no HPO terms:

    MCA(data, ncp = 8, quali.sup = inheritance)
    HCPC(mca, nb.clust = -1, kk = Inf, consol = TRUE, min = 3, max = 25)

and reports, per cluster, FactoMineR's catdes description of the categories.
This module does the same with numpy/scipy, following FactoMineR 2.7's source:

* MCA is the correspondence analysis of the indicator matrix (FactoMineR's
  MCA calls its CA on it). It is written out here rather than taken from
  ``prince``: prince scales and signs its axes its own way, and HCPC's
  cluster labels depend on the sign of axis 1, so matching FactoMineR means
  reproducing its CA, including svd.triplet's sign rule.
* HCPC builds a Ward tree on the ``ncp`` row coordinates with FactoMineR's
  weighting (merge height = inertia gained), picks the number of clusters k in
  [min, max] minimising W(k) / W(k-1) (W = within-cluster inertia), cuts the
  tree there, and consolidates with R's k-means from the cluster centres:
  Hartigan-Wong (AS 136), iter.max = 10, unweighted, as R's kmeans() does;
  a port is below because scikit-learn's Lloyd iterations stop elsewhere.
  Clusters are then numbered by their centre on axis 1, ascending.
* catdes tests each category in each cluster with the hypergeometric law;
  p.value and v.test are computed as catdes computes them and rows with
  p.value > proba (0.05) are dropped.

Result shape (``cluster_phenotypes``)::

    {
      "clusters": [            # one per cluster, in cluster order; keys as in
        {                      # SysNDD's /api/analysis/phenotype_clustering
          "cluster": "1", "cluster_size": 1131,
          "quali_inp_var": [{"variable", "Cla.Mod", "Mod.Cla", "Global", "p.value", "v.test"}],
          "quali_sup_var": [... same keys, one row per supplementary category ...],
          "quanti_sup_var": [{"variable", "v.test", "Mean.in.category", "Overall.mean",
                              "sd.in.category", "Overall.sd", "p.value"}],
          "identifiers": [{"entity_id", "hgnc_id", "symbol"}],
        }, ...
      ],
      "cluster_count": 3, "entity_count": 1828,
      "parameters": {...},     # what was run, including the columns used
      "mca": {"eigenvalues": [...], "quali_sup": [...]},
      "inertia": {"total", "within_by_clusters", "quotients", "between_before_consolidation",
                  "between_after_consolidation", "kmeans_iterations", "kmeans_converged"},
    }

Like SysNDD, ``quali_inp_var`` lists the "yes" category of each term (named by
the term) and leaves out "no" (SysNDD's matrix has no "no": missing there is
not-annotated). Rows are sorted by p.value. A p.value below the smallest
double is reported as that smallest double so v.test stays finite (FactoMineR
would give +-Inf, which JSON cannot carry).
"""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import cut_tree, linkage
from scipy.stats import f as f_distribution
from scipy.stats import hypergeom, norm

from actors.analysis.progress import Progress, step_reporter

SHIPPED_MATRIX = "ndd_phenotype_matrix.csv.gz"
IDENTIFIER_COLUMNS = ("entity_id", "hgnc_id", "symbol")
PROGRESS_STEPS = ("prepare", "mca", "tree", "cut", "consolidate", "describe", "summarise")

YES, NO = "yes", "no"
# Spellings read_matrix_csv accepts for a term's presence; an empty cell is
# "no" because that is what a missing annotation means in SysNDD's matrix.
YES_SPELLINGS = {"yes", "y", "true", "t", "1"}
NO_SPELLINGS = {"no", "n", "false", "f", "0", ""}
MISSING_SUPPLEMENTARY = {"", "na", "nan", "null", "none"}



# ----------------------------------------------------------------- reading ---


def load_matrix(path: str | Path | None = None) -> pd.DataFrame:
    """The entity x phenotype matrix shipped in actors/data, or one in that format at ``path``.

    Columns: entity_id, hgnc_id, symbol, inheritance, then one yes/no column
    per HPO term (built by ``python -m actors.data.builders.phenotype_matrix``).
    """
    if path is None:
        source = resources.files("actors.data").joinpath(SHIPPED_MATRIX)
        with source.open("rb") as raw:
            text = _decode(gzip.decompress(raw.read()), SHIPPED_MATRIX)
        return _parse_matrix_text(text, SHIPPED_MATRIX)
    return read_matrix_csv(path)


def read_matrix_csv(
    path: str | Path,
    quali_sup: Sequence[str] = ("inheritance",),
    id_column: str | None = None,
    quanti_sup: Sequence[str] = (),
) -> pd.DataFrame:
    """Read a user's entity x phenotype CSV (``.gz`` is gunzipped).

    The entity id is ``id_column`` or else the first column; it comes back as
    ``entity_id``. ``hgnc_id`` and ``symbol`` columns, if present, are kept as
    identifiers. Columns named in ``quali_sup`` (categories) and ``quanti_sup``
    (numbers) are supplementary: described per cluster, not clustered on.
    Every other column is a phenotype: yes/no (also y/n, true/false, 1/0, any
    case; an empty cell is "no"). Leading lines starting with ``#`` are
    comments. Every problem is a ValueError naming the file, line and column.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot read file ({error.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: not a readable gzip file ({error})") from None
    return _parse_matrix_text(
        _decode(raw, path), path, quali_sup=quali_sup, quanti_sup=quanti_sup, id_column=id_column
    )


def _decode(raw: bytes, name) -> str:
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{name}: not a UTF-8 text file ({error.reason})") from None


def _parse_matrix_text(
    text: str,
    name,
    quali_sup: Sequence[str] = ("inheritance",),
    quanti_sup: Sequence[str] = (),
    id_column: str | None = None,
) -> pd.DataFrame:
    quali_sup, quanti_sup = (
        _column_names(quali_sup, "quali_sup"),
        _column_names(quanti_sup, "quanti_sup"),
    )
    lines = text.splitlines()
    skipped = 0
    while skipped < len(lines) and lines[skipped].lstrip().startswith("#"):
        skipped += 1
    rows = list(csv.reader(lines[skipped:]))
    while rows and not any(field.strip() for field in rows[-1]):
        rows.pop()
    if not rows:
        raise ValueError(
            f"{name}: no header line; expected an entity id column, then yes/no columns"
        )

    header = [column.strip() for column in rows[0]]
    if any(not column for column in header):
        raise ValueError(f"{name}: header has an empty column name (column {header.index('') + 1})")
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:
        raise ValueError(f"{name}: header repeats column(s) {', '.join(map(repr, duplicated))}")
    id_column = header[0] if id_column is None else id_column
    if id_column not in header:
        raise ValueError(f"{name}: id column {id_column!r} is not in the header")
    if id_column != "entity_id" and "entity_id" in header:
        raise ValueError(
            f"{name}: has an 'entity_id' column but {id_column!r} was named the id column"
        )
    for column in (*quali_sup, *quanti_sup):
        if column not in header:
            raise ValueError(
                f"{name}: supplementary column {column!r} is not in the header "
                f"({', '.join(header)}); name only columns the file has (quali_sup=() for none)"
            )
        if column == id_column:
            raise ValueError(f"{name}: {column!r} is the id column and cannot be supplementary")
    both = set(quali_sup) & set(quanti_sup)
    if both:
        raise ValueError(
            f"{name}: column(s) {', '.join(sorted(both))} named both quali_sup and quanti_sup"
        )

    identifiers = [id_column] + [c for c in ("hgnc_id", "symbol") if c in header and c != id_column]
    supplementary = set(quali_sup) | set(quanti_sup)
    terms = [c for c in header if c not in identifiers and c not in supplementary]
    if not terms:
        raise ValueError(
            f"{name}: no phenotype (yes/no) columns besides ids and supplementary columns"
        )

    records: dict[str, list] = {column: [] for column in header}
    seen_ids: dict[str, int] = {}
    for line_number, row in enumerate(rows[1:], start=skipped + 2):
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{name}, line {line_number}: {len(row)} fields, header has {len(header)}"
            )
        values = dict(zip(header, (field.strip() for field in row), strict=True))
        entity = values[id_column]
        if not entity:
            raise ValueError(f"{name}, line {line_number}: empty entity id in column {id_column!r}")
        if entity in seen_ids:
            raise ValueError(
                f"{name}, line {line_number}: entity id {entity!r} repeats line {seen_ids[entity]}"
            )
        seen_ids[entity] = line_number
        for column in header:
            value = values[column]
            if column in terms:
                value = _yes_no(value, f"{name}, line {line_number}, column {column!r}")
            elif column in quanti_sup:
                value = _number(value, f"{name}, line {line_number}, column {column!r}")
            elif column in quali_sup and value.lower() in MISSING_SUPPLEMENTARY:
                value = None
            records[column].append(value)
    if not seen_ids:
        raise ValueError(f"{name}: no entity rows below the header")

    frame = pd.DataFrame(records, columns=header)
    frame = frame.rename(columns={id_column: "entity_id"})
    if all(entity.lstrip("-").isdigit() for entity in frame["entity_id"]):
        frame["entity_id"] = frame["entity_id"].astype(np.int64)
    return frame


def _column_names(columns: Sequence[str] | str, what: str) -> tuple[str, ...]:
    if isinstance(columns, str):
        columns = (columns,)
    if columns is None:
        return ()
    columns = tuple(columns)
    if not all(isinstance(column, str) and column.strip() for column in columns):
        raise ValueError(f"{what} must be a list of column names, got {columns!r}")
    return tuple(column.strip() for column in columns)


def _yes_no(value, where: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO
    if isinstance(value, (bool, np.bool_)):
        return YES if value else NO
    text = str(value).strip().lower()
    if text.endswith(".0") and text[:-2] in {"0", "1"}:
        text = text[:-2]
    if text in YES_SPELLINGS:
        return YES
    if text in NO_SPELLINGS:
        return NO
    raise ValueError(f"{where}: {value!r} is not yes/no (nor y/n, true/false, 1/0, empty)")


def _number(value, where: str) -> float:
    if value is None or (isinstance(value, str) and value.strip().lower() in MISSING_SUPPLEMENTARY):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if math.isinf(number):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    return number


# --------------------------------------------------------------- analysis ---


def cluster_phenotypes(
    matrix: pd.DataFrame,
    *,
    quali_sup: Sequence[str] = ("inheritance",),
    quanti_sup: Sequence[str] = (),
    ncp: int = 8,
    min_clusters: int = 3,
    max_clusters: int = 25,
    n_clusters: int | None = None,
    consolidate: bool = True,
    iter_max: int = 10,
    proba: float = 0.05,
    row_weights: Sequence[float] | None = None,
    progress: Progress | None = None,
) -> dict:
    """MCA + HCPC + catdes of an entity x phenotype matrix (see the module docstring).

    ``matrix`` has an ``entity_id`` column (or its index holds the ids),
    optional ``hgnc_id``/``symbol`` columns, the supplementary columns named in
    ``quali_sup``/``quanti_sup``, and yes/no phenotype columns (everything
    else). ``n_clusters`` fixes the number of clusters (HCPC's nb.clust > 0)
    instead of choosing it in [min_clusters, max_clusters]. ``row_weights``
    (default: 1 per entity) weight the MCA, the Ward tree and catdes, as
    FactoMineR's ``row.w`` does; its k-means ignores them, as FactoMineR's does.

    ``progress(step, current, total, message)`` is called as each step of
    PROGRESS_STEPS starts (current = 1-based step number, total = number of
    steps). An exception it raises aborts the run, which is how a caller can cancel.
    """
    _check_parameters(
        ncp, min_clusters, max_clusters, n_clusters, consolidate, iter_max, proba, progress
    )
    if not isinstance(matrix, pd.DataFrame):
        raise ValueError(f"matrix must be a pandas DataFrame, got {type(matrix).__name__}")
    report = step_reporter(progress, PROGRESS_STEPS)

    report("prepare", f"checking a {matrix.shape[0]} x {matrix.shape[1]} matrix")
    table = _checked_table(matrix, quali_sup, quanti_sup, row_weights)
    n = len(table["entity_ids"])
    fewest = n_clusters or min_clusters
    if n < fewest + 1:
        raise ValueError(f"{n} entities cannot make {fewest} clusters; need at least {fewest + 1}")

    report("mca", f"{n} entities x {len(table['terms'])} terms, ncp = {ncp}")
    mca = multiple_correspondence_analysis(
        table["active"], ncp=ncp, row_weights=table["weights"], quali_sup=table["quali_sup"]
    )
    coords = mca["row_coords"]

    report("tree", f"Ward on {coords.shape[1]} axes")
    # FactoMineR sorts the entities by axis 1 before building the tree, which
    # fixes the order ties are met in and the order k-means visits points.
    order = np.argsort(coords[:, 0], kind="stable")
    tree = ward_tree(coords[order], table["weights"][order])

    report(
        "cut",
        f"choosing between {min_clusters} and {max_clusters} clusters"
        if n_clusters is None
        else f"{n_clusters} clusters",
    )
    cut = choose_cluster_count(tree["gains"], min_clusters, max_clusters)
    if n_clusters is None and cut["clusters"] is None:
        raise ValueError(
            f"no usable number of clusters between {min_clusters} and {max_clusters}: "
            "the entities have too few distinct phenotype profiles"
        )
    k = cut["clusters"] if n_clusters is None else n_clusters
    labels_sorted = cut_into(tree["linkage"], k)

    report("consolidate", f"k-means from {k} cluster centres" if consolidate else "skipped")
    kmeans = None
    if consolidate:
        kmeans = hartigan_wong_kmeans(
            coords[order], _centres(coords[order], labels_sorted, k), iter_max
        )
        labels_sorted = kmeans["labels"]
    labels_sorted = _number_by_axis1(coords[order], labels_sorted, k)
    labels = np.empty(n, dtype=int)
    labels[order] = labels_sorted

    report("describe", f"catdes of {k} clusters")
    described = describe_clusters(labels, k, table, proba)

    report("summarise", f"{k} clusters")
    clusters = []
    for cluster in range(1, k + 1):
        members = np.flatnonzero(labels == cluster)
        clusters.append(
            {
                "cluster": str(cluster),
                "cluster_size": int(len(members)),
                "quali_inp_var": described["quali_inp_var"][cluster],
                "quali_sup_var": described["quali_sup_var"][cluster],
                "quanti_sup_var": described["quanti_sup_var"][cluster],
                "identifiers": [_identifier(table, i) for i in members],
            }
        )
    total_inertia = float(sum(tree["gains"]))
    return {
        "clusters": clusters,
        "cluster_count": k,
        "entity_count": n,
        "parameters": {
            "ncp": int(mca["ncp"]),
            "min_clusters": min_clusters,
            "max_clusters": cut["max_clusters"],
            "n_clusters": n_clusters,
            "consolidate": consolidate,
            "iter_max": iter_max,
            "proba": proba,
            "quali_sup": list(table["quali_sup_names"]),
            "quanti_sup": list(table["quanti_sup_names"]),
            "terms": list(table["terms"]),
            "weighted": bool(np.any(table["weights"] != table["weights"][0])),
        },
        "mca": {
            "eigenvalues": [
                {
                    "dimension": d + 1,
                    "eigenvalue": float(value),
                    "percentage_of_variance": float(100 * value / mca["eigenvalues"].sum()),
                    "cumulative_percentage_of_variance": float(
                        100 * mca["eigenvalues"][: d + 1].sum() / mca["eigenvalues"].sum()
                    ),
                }
                for d, value in enumerate(mca["eigenvalues"])
            ],
            "quali_sup": mca["quali_sup"],
        },
        "inertia": {
            "total": total_inertia,
            "within_by_clusters": {str(c): w for c, w in cut["within"].items()},
            # NaN (0/0, identical profiles) becomes None so the result stays strict JSON.
            "quotients": {
                str(c): None if math.isnan(q) else q for c, q in cut["quotients"].items()
            },
            "between_before_consolidation": float(total_inertia - tree["gains"][k - 1 :].sum()),
            "between_after_consolidation": (
                _between_inertia(coords, labels, table["weights"]) if consolidate else None
            ),
            "kmeans_iterations": None if kmeans is None else kmeans["iterations"],
            "kmeans_converged": None if kmeans is None else kmeans["converged"],
        },
    }


def _check_parameters(
    ncp, min_clusters, max_clusters, n_clusters, consolidate, iter_max, proba, progress
) -> None:
    def is_int(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_int(ncp) or ncp < 1:
        raise ValueError(f"ncp must be an integer >= 1, got {ncp!r}")
    if not is_int(min_clusters) or min_clusters < 2:
        raise ValueError(f"min_clusters must be an integer >= 2, got {min_clusters!r}")
    if not is_int(max_clusters) or max_clusters < min_clusters:
        raise ValueError(
            f"max_clusters must be an integer >= min_clusters ({min_clusters}), "
            f"got {max_clusters!r}"
        )
    if n_clusters is not None and (not is_int(n_clusters) or n_clusters < 2):
        raise ValueError(f"n_clusters must be an integer >= 2 or None, got {n_clusters!r}")
    if not isinstance(consolidate, bool):
        raise ValueError(f"consolidate must be true or false, got {consolidate!r}")
    if not is_int(iter_max) or iter_max < 1:
        raise ValueError(f"iter_max must be an integer >= 1, got {iter_max!r}")
    if isinstance(proba, bool) or not isinstance(proba, (int, float)) or not 0 < proba <= 1:
        raise ValueError(f"proba must be a number in (0, 1], got {proba!r}")
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable or None")


def _checked_table(matrix, quali_sup, quanti_sup, row_weights) -> dict:
    """Split the matrix into ids, active yes/no terms and supplementary columns."""
    quali_sup = _column_names(quali_sup, "quali_sup")
    quanti_sup = _column_names(quanti_sup, "quanti_sup")
    columns = [str(column) for column in matrix.columns]
    if len(set(columns)) != len(columns):
        raise ValueError("matrix has repeated column names")
    frame = matrix.copy()
    frame.columns = columns
    if "entity_id" not in frame.columns:
        frame = frame.reset_index().rename(columns={frame.index.name or "index": "entity_id"})
    if frame.empty:
        raise ValueError("matrix has no rows")
    for column in (*quali_sup, *quanti_sup):
        if column not in frame.columns:
            raise ValueError(
                f"supplementary column {column!r} is not in the matrix; "
                "name only columns it has (quali_sup=() for none)"
            )
    if frame["entity_id"].isna().any():
        raise ValueError("matrix has a missing entity_id")
    if frame["entity_id"].duplicated().any():
        repeated = frame.loc[frame["entity_id"].duplicated(), "entity_id"].iloc[0]
        raise ValueError(f"entity_id {repeated!r} appears more than once")

    terms = [
        c
        for c in frame.columns
        if c not in IDENTIFIER_COLUMNS and c not in quali_sup and c not in quanti_sup
    ]
    if not terms:
        raise ValueError("matrix has no phenotype (yes/no) columns")
    active = pd.DataFrame(
        {
            term: [
                _yes_no(value, f"column {term!r}, entity {entity!r}")
                for value, entity in zip(frame[term], frame["entity_id"], strict=True)
            ]
            for term in terms
        }
    )
    if (active.nunique() < 2).all():
        raise ValueError("no phenotype column has both yes and no: nothing to cluster on")

    supplementary_quali = {}
    for column in quali_sup:
        values = frame[column].astype(object)
        missing = values.isna() | values.astype(str).str.strip().str.lower().isin(
            MISSING_SUPPLEMENTARY
        )
        supplementary_quali[column] = np.where(missing, None, values.astype(str).str.strip())
    supplementary_quanti = {}
    for column in quanti_sup:
        supplementary_quanti[column] = np.array(
            [_number(value, f"column {column!r}") for value in frame[column]], dtype=float
        )

    if row_weights is None:
        weights = np.ones(len(frame))
    else:
        weights = np.asarray(row_weights, dtype=float)
        if weights.shape != (len(frame),):
            raise ValueError(
                f"row_weights needs one weight per entity ({len(frame)}), got shape {weights.shape}"
            )
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise ValueError("row_weights must be finite and > 0")

    return {
        "entity_ids": frame["entity_id"].tolist(),
        "hgnc_id": frame["hgnc_id"].tolist() if "hgnc_id" in frame else None,
        "symbol": frame["symbol"].tolist() if "symbol" in frame else None,
        "terms": terms,
        "active": active,
        "quali_sup": supplementary_quali,
        "quanti_sup": supplementary_quanti,
        "quali_sup_names": quali_sup,
        "quanti_sup_names": quanti_sup,
        "weights": weights,
    }


def _identifier(table: dict, row: int) -> dict:
    entity = table["entity_ids"][row]
    record = {"entity_id": entity.item() if isinstance(entity, np.generic) else entity}
    for key in ("hgnc_id", "symbol"):
        values = table[key]
        if values is not None and isinstance(values[row], str) and values[row].strip():
            record[key] = values[row].strip()
    return record


# -------------------------------------------------------------------- MCA ---


def indicator_matrix(active: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """0/1 matrix with one column per (variable, category) that occurs, categories sorted."""
    blocks, categories = [], []
    for column in active.columns:
        for category in sorted(pd.unique(active[column])):
            blocks.append((active[column] == category).to_numpy(dtype=float))
            categories.append((column, category))
    return np.column_stack(blocks), categories


def multiple_correspondence_analysis(
    active: pd.DataFrame,
    *,
    ncp: int = 8,
    row_weights: np.ndarray | None = None,
    quali_sup: dict[str, np.ndarray] | None = None,
) -> dict:
    """FactoMineR's MCA(method = "Indicator"): the CA of the indicator matrix.

    Returns the row (principal) coordinates on the first ``ncp`` axes, all
    eigenvalues FactoMineR reports, and the supplementary categories'
    coordinates and v.test (barycentres of their rows, as FactoMineR projects them).
    """
    z, _ = indicator_matrix(active)
    n, n_categories = z.shape
    n_variables = active.shape[1]
    weights = np.ones(n) if row_weights is None else np.asarray(row_weights, dtype=float)

    total = (z * weights[:, None]).sum()
    row_mass = weights * n_variables / total
    column_mass = (z * weights[:, None]).sum(axis=0) / total
    residuals = z / (row_mass[:, None] * column_mass[None, :]) * (weights[:, None] / total) - 1.0

    scaled = residuals * np.sqrt(column_mass)[None, :] * np.sqrt(row_mass)[:, None]
    _, singular, vt = np.linalg.svd(scaled, full_matrices=False)
    # FactoMineR's svd.triplet: flip each axis so its column singular vector sums positive.
    sign = np.sign(vt.sum(axis=1))
    sign[sign == 0] = 1
    vt = vt * sign[:, None]

    n_eigen = min(n - 1, n_categories - n_variables)
    eigenvalues = singular[:n_eigen] ** 2
    ncp = int(min(ncp, n - 1, n_categories - 1, max(n_eigen, 1)))
    column_standard = vt[:ncp].T / np.sqrt(column_mass)[:, None]
    # Rows as projections of their profiles (not from the SVD's U): identical
    # rows then get bit-identical coordinates, so ties sort the same every run.
    row_coords = _project_rows(residuals, column_mass, column_standard)

    supplementary = []
    if quali_sup:
        n_total = weights.sum()
        row_standard = row_coords / singular[:ncp][None, :]
        for column, values in quali_sup.items():
            present = np.array([value is not None for value in values])
            for category in sorted({value for value in values if value is not None}):
                member = present & (values == category)
                mass = weights[member].sum()
                coord = (weights[member][:, None] * row_standard[member]).sum(axis=0) / mass
                coefficient = (
                    math.sqrt(mass * (n_total - 1) / (n_total - mass))
                    if n_total > 1 and mass < n_total
                    else math.sqrt(mass)
                )
                supplementary.append(
                    {
                        "variable": column,
                        "category": category,
                        "coord": [float(x) for x in coord],
                        "v.test": [float(x) for x in coord * coefficient],
                    }
                )
    return {
        "row_coords": row_coords,
        "eigenvalues": eigenvalues,
        "ncp": ncp,
        "quali_sup": supplementary,
    }


def _project_rows(
    residuals: np.ndarray, column_mass: np.ndarray, column_standard: np.ndarray
) -> np.ndarray:
    unique_rows, inverse = np.unique(residuals, axis=0, return_inverse=True)
    projected = (unique_rows * column_mass[None, :]) @ column_standard
    return projected[inverse.reshape(-1)]


# ------------------------------------------------------------------- HCPC ---


def ward_tree(coords: np.ndarray, weights: np.ndarray) -> dict:
    """Ward's tree with FactoMineR's heights: each merge's gain in between-cluster inertia.

    FactoMineR feeds hclust d(i, j)^2 * w_i w_j / (W (w_i + w_j)), W = sum of
    weights, with the weights as cluster sizes; Lance-Williams then keeps every
    height equal to the inertia the merge loses. With equal weights that is
    scipy's Ward tree with heights h^2 / (2 W / w).
    """
    weights = np.asarray(weights, dtype=float)
    if np.all(weights == weights[0]):
        tree = linkage(coords, method="ward")
        gains = tree[:, 2] ** 2 / 2 * weights[0] / weights.sum()
    else:
        tree, gains = _weighted_ward(coords, weights)
    return {"linkage": tree, "gains": np.sort(gains)[::-1]}


def _weighted_ward(coords: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ward by nearest-neighbour chain on cluster centroids, weights as masses.

    Only used for unequal row weights (scipy's Ward has no weights). Returns a
    scipy-style linkage (heights = sqrt(2 * gain * W), like scipy's Ward) and the gains.
    """
    n = len(coords)
    total = weights.sum()
    centroid = np.array(coords, dtype=float)
    mass = np.array(weights, dtype=float)
    alive = np.ones(n, dtype=bool)
    node = np.arange(n)  # scipy node id currently stored in each slot
    merges = []

    def costs_from(i: int) -> np.ndarray:
        delta = ((centroid - centroid[i]) ** 2).sum(axis=1) * (mass * mass[i] / (mass + mass[i]))
        delta[~alive] = np.inf
        delta[i] = np.inf
        return delta

    chain: list[int] = []
    while alive.sum() > 1:
        if not chain:
            chain.append(int(np.flatnonzero(alive)[0]))
        tip = chain[-1]
        costs = costs_from(tip)
        nearest = int(np.argmin(costs))
        # Prefer the previous chain element on a tie so the chain always ends.
        if len(chain) > 1 and costs[chain[-2]] <= costs[nearest]:
            nearest = chain[-2]
        if len(chain) > 1 and nearest == chain[-2]:
            chain.pop()
            chain.pop()
            a, b = sorted((tip, nearest))
            merges.append((node[a], node[b], costs[nearest] / total, mass[a] + mass[b]))
            centroid[a] = (mass[a] * centroid[a] + mass[b] * centroid[b]) / (mass[a] + mass[b])
            mass[a] += mass[b]
            alive[b] = False
            node[a] = n + len(merges) - 1
        else:
            chain.append(nearest)

    # Renumber into scipy's convention: merges sorted by height, new node ids in that order.
    order = sorted(range(len(merges)), key=lambda m: merges[m][2])
    renumber = {n + old: n + new for new, old in enumerate(order)}
    linkage_matrix = np.empty((n - 1, 4))
    counts = {}
    for new, old in enumerate(order):
        a, b, gain, _ = merges[old]
        a, b = renumber.get(a, a), renumber.get(b, b)
        size = counts.get(a, 1) + counts.get(b, 1)
        counts[n + new] = size
        linkage_matrix[new] = (min(a, b), max(a, b), math.sqrt(2 * gain * total), size)
    gains = np.array([merges[old][2] for old in order])
    return linkage_matrix, gains


def choose_cluster_count(gains: np.ndarray, min_clusters: int, max_clusters: int) -> dict:
    """HCPC's rule: the k in [min, max] minimising W(k) / W(k - 1).

    ``gains`` are the merge gains, largest first; W(k), the within-cluster
    inertia of the k-cluster cut, is the sum of gains[k-1:]. max is capped at
    (entities - 1) as HCPC caps it. On equal quotients the smaller k wins
    (R's which.min). ``clusters`` is None when no k in the range is usable.
    """
    n = len(gains) + 1
    max_clusters = min(max_clusters, n - 1)
    within = np.cumsum(gains[::-1])[::-1]  # within[k - 1] = W(k)
    quotients = {}
    for k in range(min_clusters, max_clusters + 1):
        previous = within[k - 2]
        quotients[k] = float(within[k - 1] / previous) if previous > 0 else math.nan
    finite = {k: q for k, q in quotients.items() if not math.isnan(q)}
    return {
        "clusters": min(finite, key=lambda k: (finite[k], k)) if finite else None,
        "max_clusters": max_clusters,
        "within": {k: float(within[k - 1]) for k in range(1, max_clusters + 1)},
        "quotients": quotients,
    }


def cut_into(tree: np.ndarray, k: int) -> np.ndarray:
    """Labels 1..k of the k-cluster cut, numbered by first appearance as R's cutree does."""
    raw = cut_tree(tree, n_clusters=k).reshape(-1)
    first_seen = {}
    for label in raw:
        first_seen.setdefault(label, len(first_seen) + 1)
    return np.array([first_seen[label] for label in raw])


def _centres(coords: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return np.vstack([coords[labels == cluster].mean(axis=0) for cluster in range(1, k + 1)])


def _number_by_axis1(coords: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Renumber clusters 1..k by their centre on axis 1, ascending, as HCPC does."""
    centres = _centres(coords, labels, k)
    rank = np.empty(k, dtype=int)
    rank[np.argsort(centres[:, 0], kind="stable")] = np.arange(1, k + 1)
    return rank[labels - 1]


def _between_inertia(coords: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    total = weights.sum()
    mean = (weights[:, None] * coords).sum(axis=0) / total
    between = 0.0
    for cluster in np.unique(labels):
        member = labels == cluster
        centre = (weights[member][:, None] * coords[member]).sum(axis=0) / weights[member].sum()
        between += weights[member].sum() * ((centre - mean) ** 2).sum()
    return float(between / total)


def hartigan_wong_kmeans(points: np.ndarray, centres: np.ndarray, iter_max: int = 10) -> dict:
    """R's kmeans(points, centres, iter.max, algorithm = "Hartigan-Wong"): a port of AS 136.

    Follows R's kmns.f step by step (optimal-transfer and quick-transfer
    stages, live sets, at most 50 * m quick-transfer steps) because where
    it stops depends on the visiting order, not only on the data. Labels are 1..k.
    """
    a = np.asarray(points, dtype=float)
    c = np.array(centres, dtype=float)
    m, k = len(a), len(c)
    if k < 2 or k >= m:
        raise ValueError(f"k-means needs 2 <= clusters < points, got {k} clusters for {m} points")
    big = 1.0e30

    # Two closest centres of each point.
    distances = ((a[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    ic1 = np.zeros(m, dtype=int)
    ic2 = np.zeros(m, dtype=int)
    for i in range(m):
        first, second = (0, 1) if distances[i, 0] <= distances[i, 1] else (1, 0)
        d1, d2 = distances[i, first], distances[i, second]
        for cluster in range(2, k):
            db = distances[i, cluster]
            if db >= d2:
                continue
            if db >= d1:
                d2, second = db, cluster
            else:
                d2, second = d1, first
                d1, first = db, cluster
        ic1[i], ic2[i] = first, second

    nc = np.bincount(ic1, minlength=k).astype(int)
    if np.any(nc == 0):
        raise ValueError("k-means: an initial centre has no closest point (empty cluster)")
    c = np.vstack([a[ic1 == cluster].mean(axis=0) for cluster in range(k)])
    an2 = nc / (nc + 1.0)
    an1 = np.where(nc > 1, nc / np.maximum(nc - 1.0, 1.0), big)
    itran = np.ones(k, dtype=bool)
    ncp = np.full(k, -1, dtype=int)
    live = np.zeros(k, dtype=int)
    d = np.zeros(m)
    state = {"indx": 0, "qtran_steps_left": 50 * m}

    def transfer(i: int, l1: int, l2: int) -> None:
        al1, al2 = float(nc[l1]), float(nc[l2])
        alw, alt = al1 - 1.0, al2 + 1.0
        c[l1] = (c[l1] * al1 - a[i]) / alw
        c[l2] = (c[l2] * al2 + a[i]) / alt
        nc[l1] -= 1
        nc[l2] += 1
        an2[l1] = alw / al1
        an1[l1] = alw / (alw - 1.0) if alw > 1.0 else big
        an1[l2] = alt / al2
        an2[l2] = alt / (alt + 1.0)
        ic1[i], ic2[i] = l2, l1

    def optimal_transfer() -> None:
        # Fortran indices are 1-based: point i here is I = i + 1 there.
        for cluster in range(k):
            if itran[cluster]:
                live[cluster] = m + 1
        for i in range(m):
            point = i + 1
            state["indx"] += 1
            l1, l2 = ic1[i], ic2[i]
            ll = l2
            if nc[l1] != 1:
                if ncp[l1] != 0:
                    d[i] = ((a[i] - c[l1]) ** 2).sum() * an1[l1]
                r2 = ((a[i] - c[l2]) ** 2).sum() * an2[l2]
                for cluster in range(k):
                    if (
                        (point >= live[l1] and point >= live[cluster])
                        or cluster == l1
                        or cluster == ll
                    ):
                        continue
                    rr = r2 / an2[cluster]
                    dc = ((a[i] - c[cluster]) ** 2).sum()
                    if dc >= rr:
                        continue
                    r2 = dc * an2[cluster]
                    l2 = cluster
                if r2 >= d[i]:
                    ic2[i] = l2
                else:
                    state["indx"] = 0
                    live[l1] = live[l2] = m + point
                    ncp[l1] = ncp[l2] = point
                    transfer(i, l1, l2)
            if state["indx"] == m:
                return
        itran[:] = False
        live[:] -= m

    def quick_transfer() -> bool:
        icoun = 0
        istep = 0
        while True:
            for i in range(m):
                icoun += 1
                istep += 1
                if istep >= state["qtran_steps_left"]:
                    return False
                l1, l2 = ic1[i], ic2[i]
                if nc[l1] != 1:
                    if istep <= ncp[l1]:
                        d[i] = ((a[i] - c[l1]) ** 2).sum() * an1[l1]
                    if istep < ncp[l1] or istep < ncp[l2]:
                        r2 = d[i] / an2[l2]
                        dd = ((a[i] - c[l2]) ** 2).sum()
                        if dd < r2:
                            icoun = 0
                            state["indx"] = 0
                            itran[l1] = itran[l2] = True
                            ncp[l1] = ncp[l2] = istep + m
                            transfer(i, l1, l2)
                if icoun == m:
                    return True

    converged = False
    iterations = 0
    while iterations < iter_max:
        iterations += 1
        optimal_transfer()
        if state["indx"] == m:
            converged = True
            break
        if not quick_transfer():
            break  # R warns "Quick-TRANSfer stage steps exceeded maximum" and stops here
        if k == 2:
            converged = True
            break
        ncp[:] = 0
    labels = ic1 + 1
    return {
        "labels": labels,
        "centres": np.vstack([a[labels == cluster + 1].mean(axis=0) for cluster in range(k)]),
        "iterations": iterations,
        "converged": converged,
    }


# ----------------------------------------------------------------- catdes ---


def describe_clusters(labels: np.ndarray, k: int, table: dict, proba: float = 0.05) -> dict:
    """FactoMineR's catdes(data.clust, proba) for every cluster, in SysNDD's row shape."""
    weights = table["weights"]
    quali_inp = {cluster: [] for cluster in range(1, k + 1)}
    quali_sup = {cluster: [] for cluster in range(1, k + 1)}
    quanti_sup = {cluster: [] for cluster in range(1, k + 1)}

    for term in table["terms"]:
        values = table["active"][term].to_numpy()
        for row in category_description(labels, k, values == YES, weights, proba):
            quali_inp[row.pop("cluster")].append({"variable": term, **row})

    several = len(table["quali_sup"]) > 1
    for column, values in table["quali_sup"].items():
        for category in sorted({value for value in values if value is not None}):
            name = f"{column}={category}" if several else category
            for row in category_description(labels, k, values == category, weights, proba):
                quali_sup[row.pop("cluster")].append({"variable": name, **row})

    for column, values in table["quanti_sup"].items():
        for row in quantitative_description(labels, k, values, weights, proba):
            quanti_sup[row.pop("cluster")].append({"variable": column, **row})

    def by_p_value(rows: list[dict]) -> list[dict]:
        # catdes lists by v.test, SysNDD re-sorts by p.value (stable): do both.
        return sorted(rows, key=lambda row: (row["p.value"], -row["v.test"], row["variable"]))

    return {
        "quali_inp_var": {c: by_p_value(rows) for c, rows in quali_inp.items()},
        "quali_sup_var": {c: by_p_value(rows) for c, rows in quali_sup.items()},
        "quanti_sup_var": {c: by_p_value(rows) for c, rows in quanti_sup.items()},
    }


def category_description(
    labels: np.ndarray, k: int, has_category: np.ndarray, weights: np.ndarray, proba: float = 0.05
) -> list[dict]:
    """catdes for one category in each cluster: Cla.Mod, Mod.Cla, Global, p.value, v.test.

    p.value = min(2 P(X < x) + P(X = x), 2 P(X > x) + P(X = x)) for the
    hypergeometric count X of the category in the cluster (counts rounded as
    catdes rounds weighted counts); v.test = -qnorm(p.value / 2), positive
    when the category is over-represented in the cluster.
    """
    has_category = np.asarray(has_category, dtype=bool)
    total = weights.sum()
    category_weight = weights[has_category].sum()
    rows = []
    if category_weight == 0:
        return rows
    population = round(total)
    drawn = round(category_weight)
    for cluster in range(1, k + 1):
        member = labels == cluster
        cluster_weight = weights[member].sum()
        count = weights[member & has_category].sum()
        law = hypergeom(population, round(cluster_weight), drawn)
        x = round(count)
        point = law.pmf(x)
        p_value = min(2 * law.cdf(x - 1) + point, 2 * law.sf(x) + point)
        p_value = float(min(max(p_value, np.finfo(float).tiny), 1.0))
        if p_value > proba:
            continue
        mod_cla = count / cluster_weight
        overall = category_weight / total
        sign = 1.0 if mod_cla > overall else -1.0
        rows.append(
            {
                "cluster": cluster,
                "Cla.Mod": float(100 * count / category_weight),
                "Mod.Cla": float(100 * mod_cla),
                "Global": float(100 * overall),
                "p.value": p_value,
                "v.test": float(-sign * norm.ppf(p_value / 2)),
            }
        )
    return rows


def quantitative_description(
    labels: np.ndarray, k: int, values: np.ndarray, weights: np.ndarray, proba: float = 0.05
) -> list[dict]:
    """catdes for a numeric supplementary column: per cluster mean vs overall mean.

    As catdes: nothing is reported unless the one-way ANOVA of the column on
    the clusters has p <= proba; then clusters whose v.test has p <= proba.
    Missing values are left out of every mean.
    """
    known = ~np.isnan(values)
    x, w, cl = values[known], weights[known], labels[known]
    if len(x) < 2:
        return []
    n = w.sum()
    mean = (w * x).sum() / n
    sd = math.sqrt((w * (x - mean) ** 2).sum() / n)
    groups = [cluster for cluster in range(1, k + 1) if np.any(cl == cluster)]
    between = sum(
        w[cl == g].sum() * ((w[cl == g] * x[cl == g]).sum() / w[cl == g].sum() - mean) ** 2
        for g in groups
    )
    within = (w * (x - mean) ** 2).sum() - between
    df_between, df_within = len(groups) - 1, len(x) - len(groups)
    if df_between < 1 or df_within < 1 or sd == 0:
        return []
    anova_p = (
        f_distribution.sf((between / df_between) / (within / df_within), df_between, df_within)
        if within > 0
        else 0.0
    )
    if anova_p > proba:
        return []
    rows = []
    for cluster in groups:
        member = cl == cluster
        n_cluster = w[member].sum()
        cluster_mean = (w[member] * x[member]).sum() / n_cluster
        cluster_sd = math.sqrt((w[member] * (x[member] - cluster_mean) ** 2).sum() / n_cluster)
        v_test = (
            (cluster_mean - mean) / sd * math.sqrt(n_cluster) / math.sqrt((n - n_cluster) / (n - 1))
        )
        p_value = float(2 * norm.sf(abs(v_test)))
        if p_value <= proba:
            rows.append(
                {
                    "cluster": cluster,
                    "v.test": float(v_test),
                    "Mean.in.category": float(cluster_mean),
                    "Overall.mean": float(mean),
                    "sd.in.category": float(cluster_sd),
                    "Overall.sd": float(sd),
                    "p.value": p_value,
                }
            )
    return rows
