"""The SysNDD operations, submitted through the gateway, on the shipped data, by real
workers: the tests check what they computed, not just that they finished."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from actors.analysis.backup import restore_sqlite, verify_backup
from actors.analysis.network_clustering import load_network
from actors.analysis.phenotype_clustering import load_matrix
from actors.job_store import utc_now
from tests.support import fake_apis
from tests.support.processes import Process, wait_until

NETWORK = load_network()
NETWORK_GENES = {node["hgnc_id"] for node in NETWORK["nodes"]}


def _run(stack, operation, params, timeout=120) -> dict:
    response = stack.submit(operation, params)
    assert response.status_code == 202, response.text
    return stack.wait_status(response.json()["job_id"], timeout=timeout)


def _worker_pid(worker) -> int:
    # actors.worker runs Dramatiq's CLI: jobs run in its one forked worker process.
    return int(re.search(r"\[PID (\d+)\] \[MainThread\] \[dramatiq\.WorkerProcess", worker.log()).group(1))


def test_clustering_finds_communities_of_the_ndd_network(stack):
    body = _run(stack, "clustering", {"seed": 42})
    assert body["status"] == "completed", body
    result = body["result"]
    assert 6 <= result["cluster_count"] <= 40
    assert result["modularity"] > 0.5
    for cluster in result["clusters"]:
        assert cluster["size"] >= 10 and cluster["size"] == len(cluster["genes"])
        assert {gene["hgnc_id"] for gene in cluster["genes"]} <= NETWORK_GENES
        for sub in cluster["subclusters"]:
            assert sub["cluster"].startswith(cluster["cluster"] + ".")
    agreement = result["sysndd_agreement"]["adjusted_rand_index"]
    assert 0 < agreement <= 1  # overlaps SysNDD's own labels (figure in the README)
    # Ran on the heavy worker, reporting its stages.
    assert stack.store.get(body["job_id"])["worker"].endswith(f":{_worker_pid(stack.heavy)}")
    assert body["progress"]["step"] == "summarise" and body["progress"]["current"] == body["progress"]["total"]
    assert body["peak_memory_mb"] > 50  # igraph and the network, measured in the worker process


def test_clustering_restricted_to_genes_and_walktrap(stack):
    genes = sorted(NETWORK_GENES)[:600]
    body = _run(stack, "clustering", {"genes": genes, "algorithm": "walktrap", "min_cluster_size": 5})
    assert body["status"] == "completed", body
    clustered = {g["hgnc_id"] for c in body["result"]["clusters"] for g in c["genes"]}
    assert clustered and clustered <= set(genes)
    assert body["result"]["parameters"]["algorithm"] == "walktrap"


def test_clustering_of_too_few_genes_fails_as_invalid(stack):
    body = _run(stack, "clustering", {"genes": ["HGNC:1"]})
    assert body["status"] == "failed"
    assert body["error"]["code"] == "INVALID_PARAMS" and body["attempts"] == 1


def test_backup_is_restorable_and_checksummed(stack):
    body = _run(stack, "backup_create", {"keep": 3})
    assert body["status"] == "completed", body
    result = body["result"]
    path = Path(result["path"])
    assert path.exists() and result["checksum"].startswith("sha256:")
    assert verify_backup(path) == result["checksum"].split(":", 1)[1]
    restored = restore_sqlite(path, stack.data_dir / "restored.sqlite3")
    tables = {row[0] for row in sqlite3.connect(restored).execute("select name from sqlite_master where type='table'")}
    assert {"publications", "comparison_memberships"} <= tables


def test_pubtator_update_upserts_idempotently(stack):
    first = _run(stack, "pubtator_update", {"query": "intellectual disability", "max_pages": 5})
    assert first["status"] == "completed", first
    assert first["result"]["publications_inserted"] == len(fake_apis.PUBTATOR_RECORDS)
    assert first["result"]["pages"] == 2
    second = _run(stack, "pubtator_update", {"query": "intellectual disability", "max_pages": 5})
    assert second["result"]["publications_inserted"] == 0
    db = sqlite3.connect(stack.data_dir / "sysndd-jobs.sqlite3")
    pmids = [row[0] for row in db.execute("select pmid from publications where search_query = 'intellectual disability'")]
    assert sorted(pmids) == sorted(r["pmid"] for r in fake_apis.PUBTATOR_RECORDS)
    assert db.execute("select count(*) from publication_gene_mentions where pmid = 41433235").fetchone()[0] == 1


def test_comparisons_update_from_shipped_lists_and_a_remote_one(stack):
    remote = fake_apis.files({"/my-list.csv": b"symbol\nKCNK4\nSLC12A5\nNOT_A_GENE\n"})
    try:
        body = _run(stack, "comparisons_update", {"sources": {"my_list": f"{remote.url}/my-list.csv"}})
    finally:
        remote.close()
    assert body["status"] == "completed", body
    upset = body["result"]["upset"]
    members = {row["name"] for row in upset if "my_list" in row["sets"]}
    assert len(members) == 2 and all(m.startswith("HGNC:") for m in members)

    shipped = _run(stack, "comparisons_update", {})
    assert shipped["status"] == "completed"
    lists = {name for row in shipped["result"]["upset"] for name in row["sets"]}
    assert {"SysNDD", "panelapp", "sfari"} <= lists
    assert len(shipped["result"]["upset"]) > 4000


def test_comparisons_update_refuses_local_paths(stack):
    response = stack.submit("comparisons_update", {"sources": {"x": "/etc/passwd"}})
    assert response.status_code == 400 and response.json()["error"] == "INVALID_PARAMS"


def test_two_schedulers_submit_one_job_per_tick(stack, logs, tmp_path):
    # periodiq sends a tick at start-up when the cron line matches the current minute;
    # start both well inside one minute.
    wait_until(lambda: time.localtime().tm_sec < 45, timeout=20, what="the start of a minute", interval=0.5)
    env = {"REDIS_URL": stack.redis.url, "SCHEDULE_BACKUP_CREATE": "* * * * *",
           "SCHEDULE_PUBTATOR_UPDATE": "0 0 1 1 *", "SCHEDULE_COMPARISONS_UPDATE": "0 0 1 1 *",
           "SCHEDULE_CLEANUP": "0 0 1 1 *"}
    started = utc_now()
    schedulers = [Process(f"scheduler-{i}", [sys.executable, "-m", "actors.schedule"], env, logs) for i in (1, 2)]
    try:
        for scheduler in schedulers:
            wait_until(lambda: "Scheduling" in scheduler.log(), timeout=30, what="a tick", process=scheduler)

        def scheduled_backups():
            jobs = stack.http.get(stack.url("/api/jobs/history"), params={"operation": "backup_create", "limit": 100}).json()
            return [j for j in jobs["data"] if j["submitted_at"] >= started]

        wait_until(lambda: scheduled_backups(), timeout=30, what="the scheduled backup job")
        time.sleep(2)  # give the second tick every chance to double the run
        assert len(scheduled_backups()) == 1
        assert "already handled" in stack.light.log()
    finally:
        for scheduler in schedulers:
            scheduler.stop()


def test_phenotype_clustering_matches_factomineRs_shape_and_signs(stack):
    body = _run(stack, "phenotype_clustering", {})
    assert body["status"] == "completed", body
    result = body["result"]
    assert result["cluster_count"] == len(result["clusters"]) == 3  # FactoMineR's HCPC on this matrix
    entity_ids = set(load_matrix()["entity_id"])
    assert sum(c["cluster_size"] for c in result["clusters"]) == len(entity_ids)
    for cluster in result["clusters"]:
        assert set(cluster) >= {"cluster", "cluster_size", "quali_inp_var", "quali_sup_var", "identifiers"}
        assert {i["entity_id"] for i in cluster["identifiers"]} <= entity_ids
        for row in cluster["quali_inp_var"]:
            # More frequent in the cluster than overall <=> positive v.test.
            assert (row["Mod.Cla"] > row["Global"]) == (row["v.test"] > 0), row
            assert 0 <= row["p.value"] <= 0.05
    assert stack.store.get(body["job_id"])["worker"].endswith(f":{_worker_pid(stack.heavy)}")


def test_run_in_process_with_input_files(tmp_path):
    edges = tmp_path / "edges.csv"
    network = load_network()
    edges.write_text("source,target,confidence\n" + "".join(
        f"{e['source']},{e['target']},{e['confidence']}\n" for e in network["edges"][:3000]))
    out = subprocess.run([sys.executable, "-m", "actors.run", "clustering", "--input", str(edges),
                          "--params", '{"min_cluster_size": 5}'], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["cluster_count"] >= 2 and result["parameters"]["min_cluster_size"] == 5
    assert "[cluster 3/5]" in out.stderr

    matrix = load_matrix().head(400)
    terms = [c for c in matrix.columns if c not in ("entity_id", "hgnc_id", "symbol", "inheritance")]
    csv_path = tmp_path / "matrix.csv"
    matrix[["entity_id", "inheritance", *terms]].rename(columns={"entity_id": "my_id", "inheritance": "mode"}).to_csv(
        csv_path, index=False)
    out = subprocess.run([sys.executable, "-m", "actors.run", "phenotype_clustering", "--input", str(csv_path),
                          "--quali-sup", "mode"], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    identifiers = {i["entity_id"] for c in result["clusters"] for i in c["identifiers"]}
    assert identifiers == set(matrix["entity_id"])
    assert any(row for c in result["clusters"] for row in c["quali_sup_var"])

    bad = subprocess.run([sys.executable, "-m", "actors.run", "clustering", "--params", '{"algorithm": 1}'],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and json.loads(bad.stderr)["error"] == "INVALID_PARAMS"


def test_finished_clustering_enqueues_its_llm_summaries(stack, llm_api):
    body = _run(stack, "clustering", {"seed": 7})
    assert body["status"] == "completed", body
    follow_up = body["follow_up_job_id"]
    assert body["follow_up_status_url"] == f"/api/jobs/{follow_up}/status"
    summaries = stack.wait_status(follow_up, timeout=120)
    assert summaries["status"] == "completed", summaries
    assert summaries["operation"] == "llm_generation" and summaries["queue"] == "heavy"
    result = summaries["result"]
    assert result["source_job_id"] == body["job_id"] and result["cluster_type"] == "functional"
    assert len(result["summaries"]) == body["result"]["cluster_count"]
    first = result["summaries"][0]
    assert first["summary_json"]["confidence"] == "medium" and first["summary_json"]["tags"]
    assert len(first["cluster_hash"]) == 64
    posts = [r for r in llm_api.requests if r.path == "/chat/completions"]
    assert posts and posts[-1].headers["Authorization"] == "Bearer test-key"

    # The same clusters again: every summary comes from the cache, no new request.
    before = len(llm_api.requests)
    again = _run(stack, "llm_generation", {"source_job_id": body["job_id"], "cluster_type": "functional"})
    assert again["status"] == "completed", again
    assert all(s["cached"] for s in again["result"]["summaries"])
    assert len(llm_api.requests) == before


def test_llm_generation_without_an_endpoint_fails_clearly(fresh_redis, logs):
    from tests.conftest import Stack
    from tests.support.processes import start_gateway, start_worker

    worker = start_worker(fresh_redis.url, "heavy", logs, env={"LLM_BASE_URL": "", "LLM_MODEL": ""})
    gateway, base = start_gateway(fresh_redis.url, logs)
    try:
        stack = Stack(redis=fresh_redis, base=base, heavy=worker, gateway=gateway)
        body = _run(stack, "llm_generation", {"source_job_id": "whatever"})
        assert body["status"] == "failed"
        assert body["error"]["code"] == "LLM_NOT_CONFIGURED" and "LLM_BASE_URL" in body["error"]["message"]
        assert body["attempts"] == 1
        # Nothing to summarise with: a clustering does not chain a job bound to fail.
        clustering = _run(stack, "clustering", {})
        assert clustering["status"] == "completed" and "follow_up_job_id" not in clustering
    finally:
        gateway.stop()
        worker.stop()
