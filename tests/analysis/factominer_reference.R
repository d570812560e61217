# Regenerates the FactoMineR fixtures that test_phenotype_clustering.py compares against.
#
#   apt-get install -y r-cran-factominer      # Debian's package; CI does not need R
#   Rscript tests/analysis/factominer_reference.R
#
# Runs SysNDD's analysis (api/functions/analyses-functions.R, gen_mca_clust_obj):
# MCA(ncp = 8, quali.sup = inheritance) on actors/data/ndd_phenotype_matrix.csv.gz,
# then HCPC(nb.clust = -1, kk = Inf, consol = TRUE, min = 3, max = 25), and writes
#
#   fixtures/factominer_partition.csv  entity_id, cluster (HCPC's labels)
#   fixtures/factominer_catdes.csv     catdes of every category in every cluster,
#                                      unfiltered (proba = 1) so the test can apply
#                                      FactoMineR's 0.05 filter itself
#
# Data: SysNDD (sysndd.dbmr.unibe.ch), CC BY 4.0; Human Phenotype Ontology, HPO licence.

suppressPackageStartupMessages(library(FactoMineR))

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg[1]))) else "tests/analysis"
repo <- normalizePath(file.path(here, "..", ".."))
matrix_path <- file.path(repo, "actors", "data", "ndd_phenotype_matrix.csv.gz")
fixtures <- file.path(here, "fixtures")
dir.create(fixtures, showWarnings = FALSE)

raw <- read.csv(gzfile(matrix_path), comment.char = "#", check.names = FALSE,
                stringsAsFactors = TRUE, colClasses = c(entity_id = "character"))
rownames(raw) <- raw$entity_id
data <- raw[, setdiff(colnames(raw), c("entity_id", "hgnc_id", "symbol")), drop = FALSE]

# SysNDD sets this seed before MCA/HCPC; with kk = Inf nothing below draws on it.
set.seed(42)
mca <- MCA(data, ncp = 8, quali.sup = which(colnames(data) == "inheritance"), graph = FALSE)
hcpc <- HCPC(mca, nb.clust = -1, kk = Inf, consol = TRUE, min = 3, max = 25, graph = FALSE)

versions <- sprintf("# FactoMineR %s, %s; MCA(ncp = 8, quali.sup = inheritance) + HCPC(nb.clust = -1, kk = Inf, consol = TRUE, min = 3, max = 25)",
                    as.character(packageVersion("FactoMineR")), R.version.string)

write_with_header <- function(frame, path) {
  con <- file(path, "w")
  writeLines(versions, con)
  write.csv(frame, con, row.names = FALSE)
  close(con)
}

partition <- data.frame(
  entity_id = as.integer(rownames(hcpc$data.clust)),
  cluster = as.integer(as.character(hcpc$data.clust$clust))
)
write_with_header(partition[order(partition$entity_id), ], file.path(fixtures, "factominer_partition.csv"))

# catdes names a category "<column, spaces as dots>=<level>", and MCA has renamed
# the shared yes/no levels "<column>_yes"/"<column>_no"; split them back apart.
description <- catdes(hcpc$data.clust, ncol(hcpc$data.clust), proba = 1)
rows <- lapply(names(description$category), function(cluster) {
  table <- description$category[[cluster]]
  level <- sub("^[^=]*=", "", rownames(table))
  yes_no <- grepl("_(yes|no)$", level)
  data.frame(
    cluster = as.integer(cluster),
    variable = ifelse(yes_no, sub("_(yes|no)$", "", level), "inheritance"),
    category = ifelse(yes_no, sub("^.*_(yes|no)$", "\\1", level), level),
    Cla.Mod = table[, "Cla/Mod"],
    Mod.Cla = table[, "Mod/Cla"],
    Global = table[, "Global"],
    p.value = table[, "p.value"],
    v.test = table[, "v.test"],
    check.names = FALSE
  )
})
catdes_table <- do.call(rbind, rows)
catdes_table <- catdes_table[order(catdes_table$cluster, catdes_table$variable, catdes_table$category), ]
write_with_header(catdes_table, file.path(fixtures, "factominer_catdes.csv"))

cat(versions, "\n")
cat(sprintf("entities %d, clusters %d, sizes %s\n", nrow(partition), nlevels(hcpc$data.clust$clust),
            paste(table(partition$cluster), collapse = " ")))
cat("eigenvalues (first 8):", paste(signif(mca$eig[1:8, 1], 8), collapse = " "), "\n")
cat("within-inertia quotients W(k)/W(k-1), k = 3..25:", paste(signif(hcpc$call$t$quot, 6), collapse = " "), "\n")
