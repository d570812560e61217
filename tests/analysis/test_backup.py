"""create_backup / verify_backup / restore_sqlite on SQLite, and pg_dump when PostgreSQL is reachable."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
import uuid
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import insert, make_url

from actors.analysis.backup import (
    BackupChecksumError,
    BackupError,
    BackupInProgressError,
    _dump_command,
    backup_lock,
    create_backup,
    latest_backup,
    list_backups,
    restore_sqlite,
    verify_backup,
)
from actors.datastore.base import create_all, make_engine
from actors.datastore.models import Publication



def add_publications(engine, count: int, first_pmid: int = 1) -> None:
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            insert(Publication.__table__),
            [
                {
                    "pmid": pmid,
                    "title": f"paper {pmid}",
                    "publication_date": date(2026, 1, 1),
                    "created_at": now,
                    "updated_at": now,
                }
                for pmid in range(first_pmid, first_pmid + count)
            ],
        )


@pytest.fixture
def sqlite_store(tmp_path):
    path = tmp_path / "store.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    create_all(engine)
    add_publications(engine, 25)
    yield engine, path
    engine.dispose()


def pmids(path) -> list[int]:
    connection = sqlite3.connect(path)
    try:
        return [row[0] for row in connection.execute("SELECT pmid FROM publications ORDER BY pmid")]
    finally:
        connection.close()


def test_sqlite_backup_is_verified_and_restorable(sqlite_store, tmp_path):
    engine, path = sqlite_store
    steps = []
    result = create_backup(
        engine, backup_dir=tmp_path / "backups", keep=3, progress=lambda *a: steps.append(a)
    )

    backup_path = tmp_path / "backups" / result["filename"]
    assert result["filename"].endswith(".store.sqlite3.gz")
    assert result["size_bytes"] == backup_path.stat().st_size
    assert result["table_count"] >= 1
    assert result["checksum"] == f"sha256:{verify_backup(backup_path)}"
    # sha256sum format, so `sha256sum -c` works on the backup directory too.
    assert (tmp_path / "backups" / (result["filename"] + ".sha256")).read_text() == (
        f"{result['checksum'].removeprefix('sha256:')}  {result['filename']}\n"
    )
    assert {step for step, *_ in steps} >= {"lock", "snapshot", "compress", "checksum", "rotate", "done"}

    add_publications(engine, 5, first_pmid=1000)  # changes after the snapshot are not in it
    restored = restore_sqlite(backup_path, tmp_path / "restored" / "store.sqlite3")
    assert pmids(restored) == list(range(1, 26))


def test_backup_accepts_a_url_string(sqlite_store, tmp_path):
    _, path = sqlite_store
    result = create_backup(f"sqlite:///{path}", backup_dir=tmp_path / "backups")
    assert verify_backup(tmp_path / "backups" / result["filename"])


def test_tampered_backup_fails_verification_and_restore(sqlite_store, tmp_path):
    engine, _ = sqlite_store
    result = create_backup(engine, backup_dir=tmp_path / "backups")
    backup_path = tmp_path / "backups" / result["filename"]
    data = bytearray(backup_path.read_bytes())
    data[-10] ^= 0xFF
    backup_path.write_bytes(bytes(data))

    with pytest.raises(BackupChecksumError):
        verify_backup(backup_path)
    with pytest.raises(BackupChecksumError):
        restore_sqlite(backup_path, tmp_path / "restored.sqlite3")
    assert not (tmp_path / "restored.sqlite3").exists()


def test_rotation_keeps_the_newest_and_latest_points_to_the_newest(sqlite_store, tmp_path):
    engine, _ = sqlite_store
    backup_dir = tmp_path / "backups"
    (backup_dir).mkdir()
    (backup_dir / "notes.txt").write_text("not a backup: rotation must leave it alone")

    results = [create_backup(engine, backup_dir=backup_dir, keep=2) for _ in range(4)]
    names = [result["filename"] for result in results]

    assert [entry["filename"] for entry in list_backups(backup_dir)] == [names[3], names[2]]
    assert results[2]["deleted"] == [names[0]]
    assert results[3]["deleted"] == [names[1]]
    remaining = sorted(path.name for path in backup_dir.iterdir() if not path.name.startswith("."))
    assert remaining == sorted(
        [names[2], names[2] + ".sha256", names[3], names[3] + ".sha256", "latest", "notes.txt"]
    )
    assert (backup_dir / "latest").read_text().strip() == names[3]
    assert latest_backup(backup_dir) == backup_dir / names[3]
    entry = list_backups(backup_dir)[0]
    assert set(entry) == {"filename", "size_bytes", "created_at", "checksum"}
    assert entry["created_at"].endswith("Z")


def test_a_second_backup_is_refused_while_one_runs(sqlite_store, tmp_path):
    engine, _ = sqlite_store
    backup_dir = tmp_path / "backups"
    refused = []

    def start_another(step, current, total, message=""):
        if step == "snapshot" and not refused:
            with pytest.raises(BackupInProgressError):
                create_backup(engine, backup_dir=backup_dir)
            refused.append(True)

    result = create_backup(engine, backup_dir=backup_dir, progress=start_another)
    assert refused == [True]
    assert [entry["filename"] for entry in list_backups(backup_dir)] == [result["filename"]]

    with backup_lock(backup_dir):  # a lock held elsewhere, outside any backup call
        with pytest.raises(BackupInProgressError):
            create_backup(engine, backup_dir=backup_dir)
    create_backup(engine, backup_dir=backup_dir)  # and free again afterwards


def test_a_failed_backup_leaves_nothing_behind(tmp_path):
    backup_dir = tmp_path / "backups"
    with pytest.raises(BackupError):
        create_backup(f"sqlite:///{tmp_path / 'missing.sqlite3'}", backup_dir=backup_dir)
    assert not (tmp_path / "missing.sqlite3").exists()  # never created by the attempt
    assert [path.name for path in backup_dir.iterdir()] == [".backup.lock"]
    with pytest.raises(BackupError):
        create_backup("sqlite://", backup_dir=backup_dir)  # in-memory: nothing to snapshot


# --- PostgreSQL through pg_dump, when reachable -------------------------------------




def test_postgresql_backup_with_pg_dump(postgres_url, tmp_path):
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump not installed")
    engine = make_engine(postgres_url)
    try:
        create_all(engine)
        add_publications(engine, 3)
        result = create_backup(engine, backup_dir=tmp_path / "backups", keep=1)
    finally:
        engine.dispose()

    backup_path = tmp_path / "backups" / result["filename"]
    assert result["filename"].endswith(".sql.gz")
    assert result["backend"] == "postgresql"
    assert result["checksum"] == f"sha256:{verify_backup(backup_path)}"
    dump = gzip.decompress(backup_path.read_bytes()).decode()
    assert "CREATE TABLE public.publications" in dump
    assert "paper 3" in dump


def test_pg_dump_failure_is_a_backup_error(tmp_path):
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump not installed")
    backup_dir = tmp_path / "backups"
    missing = f"postgresql+psycopg://postgres@127.0.0.1:5432/no_such_db_{uuid.uuid4().hex[:8]}"
    with pytest.raises(BackupError):
        create_backup(missing, backup_dir=backup_dir)
    assert [path.name for path in backup_dir.iterdir()] == [".backup.lock"]


def test_dump_commands_keep_passwords_off_the_command_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    command, environment = _dump_command(make_url("postgresql+psycopg://app:secret@db:5433/sysndd"))
    assert command[0] == "pg_dump" and "secret" not in " ".join(command)
    assert command[-2:] == ["--dbname", "sysndd"] and environment["PGPASSWORD"] == "secret"

    command, environment = _dump_command(make_url("mysql+pymysql://app:secret@db/sysndd"))
    assert command[0] == "mysqldump" and "--single-transaction" in command and command[-1] == "sysndd"
    assert "secret" not in " ".join(command) and environment["MYSQL_PWD"] == "secret"

    with pytest.raises(BackupError):
        _dump_command(make_url("oracle://app@db/sysndd"))
