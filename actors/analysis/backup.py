"""Compressed, checksummed, rotated snapshots of the application data store.

A backup is ``<backup_dir>/<YYYYmmdd-HHMMSS-ffffff>.<database>.<kind>.gz`` plus
``<same name>.sha256`` in ``sha256sum`` format (``sha256sum -c`` checks it), where kind
is ``sqlite3`` (a SQLite database file, copied with SQLite's online backup API) or
``sql`` (a plain ``pg_dump`` / ``mysqldump`` script, each a consistent snapshot:
pg_dump runs in one repeatable-read transaction, mysqldump gets --single-transaction).

``<backup_dir>/latest`` is a one-line text file naming the newest backup: a plain file
rather than a symlink so it survives copies to object stores, Windows shares and
volumes that drop links. ``<backup_dir>/.backup.lock`` holds an ``fcntl.flock`` while
a backup runs, so two never run at once, across processes and threads alike.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import URL, Engine, make_url

Progress = Callable[..., None]

LOCK_NAME = ".backup.lock"
LATEST_NAME = "latest"
CHECKSUM_SUFFIX = ".sha256"
BACKUP_NAME = re.compile(r"^(\d{8}-\d{6}-\d{6})\.([A-Za-z0-9_.-]+)\.(sqlite3|sql)\.gz$")
COPY_CHUNK = 1024 * 1024


class BackupError(Exception):
    """The backup could not be made; no partial file is left under a backup's name."""


class BackupInProgressError(BackupError):
    """Another backup holds the lock of this backup directory."""


class BackupChecksumError(BackupError):
    """A backup does not match its checksum file (or has none)."""


def _report(progress: Progress | None, step: str, current: int, total: int, message: str = "") -> None:
    if progress is not None:
        progress(step, current, total, message)


@contextmanager
def backup_lock(backup_dir: Path) -> Iterator[None]:
    """Hold the directory's backup lock, or raise BackupInProgressError at once."""
    # The lock file is never deleted: unlinking it would let a second process lock a
    # fresh inode while the first still holds the old one.
    with open(backup_dir / LOCK_NAME, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BackupInProgressError(f"a backup is already running in {backup_dir}") from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- snapshots --------------------------------------------------------------------


def _database_url(engine_or_url: Engine | URL | str) -> URL:
    if isinstance(engine_or_url, Engine):
        return engine_or_url.url
    return make_url(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url


def _sqlite_snapshot(url: URL, target: Path, progress: Progress | None) -> None:
    if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
        raise BackupError("an in-memory SQLite database has no file to back up")
    source_path = Path(url.database)
    if not source_path.is_file():
        raise BackupError(f"SQLite database {source_path} does not exist")
    # mode=ro: connecting must never create an empty database where the file was expected.
    source = sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True)
    destination = sqlite3.connect(target)
    try:
        _report(progress, "snapshot", 0, 1, "copying the SQLite database")
        # The online backup API copies a consistent image of a live database, unlike
        # a file copy. One step (pages=-1) rather than chunks: a chunked backup starts
        # over whenever another connection writes between chunks, and a busy store
        # could keep it from ever finishing.
        source.backup(destination, pages=-1)
        _report(progress, "snapshot", 1, 1, "copied")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {source_path} failed: {exc}") from exc
    finally:
        destination.close()
        source.close()


def _dump_command(url: URL) -> tuple[list[str], dict[str, str]]:
    backend = url.get_backend_name()
    environment = dict(os.environ)
    if backend == "postgresql":
        command = ["pg_dump", "--no-password", "--format=plain", "--no-owner"]
        if url.host:
            command += ["--host", url.host]
        if url.port:
            command += ["--port", str(url.port)]
        if url.username:
            command += ["--username", url.username]
        command += ["--dbname", url.database or "postgres"]
        # In the environment, never on the command line where ps would show it.
        if url.password:
            environment["PGPASSWORD"] = str(url.password)
    elif backend in ("mysql", "mariadb"):
        command = ["mysqldump", "--single-transaction", "--quick", "--routines", "--triggers"]
        if url.host:
            command += ["--host", url.host]
        if url.port:
            command += ["--port", str(url.port)]
        if url.username:
            command += ["--user", url.username]
        if url.password:
            environment["MYSQL_PWD"] = str(url.password)
        if not url.database:
            raise BackupError("the MySQL URL names no database")
        command.append(url.database)
    else:
        raise BackupError(f"no backup method for database backend {backend!r}")
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is not installed")
    return command, environment


def _dump_to_gzip(url: URL, target_gz: Path, progress: Progress | None) -> None:
    command, environment = _dump_command(url)
    _report(progress, "snapshot", 0, 1, f"running {command[0]}")
    with (
        open(target_gz, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw) as gz,
        tempfile.TemporaryFile() as errors,
    ):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=environment)
        assert process.stdout is not None
        try:
            shutil.copyfileobj(process.stdout, gz, COPY_CHUNK)
        finally:
            process.stdout.close()
            returncode = process.wait()
        if returncode != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()[-500:]
            raise BackupError(f"{command[0]} exited with {returncode}: {message}")
    _report(progress, "snapshot", 1, 1, f"{command[0]} finished")


def _gzip_file(source: Path, target_gz: Path) -> None:
    with (
        open(source, "rb") as plain,
        open(target_gz, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw) as gz,
    ):
        shutil.copyfileobj(plain, gz, COPY_CHUNK)


def _sqlite_table_count(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchone()[0]
    finally:
        connection.close()


# --- checksums --------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(COPY_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def verify_backup(path: str | Path) -> str:
    """Check a backup against its ``.sha256`` file; return the digest if it matches."""
    path = Path(path)
    checksum_path = path.with_name(path.name + CHECKSUM_SUFFIX)
    if not path.is_file():
        raise FileNotFoundError(path)
    if not checksum_path.is_file():
        raise BackupChecksumError(f"{path.name} has no {CHECKSUM_SUFFIX} file")
    fields = checksum_path.read_text("utf-8").split()
    if not fields or not re.fullmatch(r"[0-9a-f]{64}", fields[0]):
        raise BackupChecksumError(f"{checksum_path.name} holds no SHA-256 digest")
    actual = file_sha256(path)
    if actual != fields[0]:
        raise BackupChecksumError(f"{path.name}: SHA-256 {actual} does not match the recorded {fields[0]}")
    return actual


# --- listing and rotation ---------------------------------------------------------


def _created_at(stamp: str) -> str:
    return datetime.strptime(stamp, "%Y%m%d-%H%M%S-%f").strftime("%Y-%m-%dT%H:%M:%SZ")


def list_backups(backup_dir: str | Path) -> list[dict]:
    """Backups in the directory, newest first, as /api/backup/list entries."""
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        return []
    entries = []
    for path in backup_dir.iterdir():
        match = BACKUP_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        checksum_path = path.with_name(path.name + CHECKSUM_SUFFIX)
        checksum = checksum_path.read_text("utf-8").split()[0] if checksum_path.is_file() else None
        entries.append(
            {
                "filename": path.name,
                "size_bytes": path.stat().st_size,
                "created_at": _created_at(match.group(1)),
                "checksum": f"sha256:{checksum}" if checksum else None,
            }
        )
    # The timestamp leads the name, so name order is creation order.
    return sorted(entries, key=lambda entry: entry["filename"], reverse=True)


def _rotate(backup_dir: Path, keep: int) -> list[str]:
    deleted = []
    for entry in list_backups(backup_dir)[keep:]:
        for name in (entry["filename"], entry["filename"] + CHECKSUM_SUFFIX):
            (backup_dir / name).unlink(missing_ok=True)
        deleted.append(entry["filename"])
    return deleted


def latest_backup(backup_dir: str | Path) -> Path | None:
    pointer = Path(backup_dir) / LATEST_NAME
    if not pointer.is_file():
        return None
    name = pointer.read_text("utf-8").strip()
    return Path(backup_dir) / name if name else None


# --- the operation ----------------------------------------------------------------


def create_backup(
    engine_or_url: Engine | URL | str,
    *,
    backup_dir: str | Path,
    keep: int = 7,
    progress: Progress | None = None,
) -> dict:
    """Snapshot the database into ``backup_dir``, keeping the ``keep`` newest backups.

    Raises BackupInProgressError if another backup of the same directory is running,
    BackupError if the snapshot fails (nothing is left behind under a backup's name).
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    url = _database_url(engine_or_url)
    backend = url.get_backend_name()
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)

    _report(progress, "lock", 0, 1, f"locking {backup_dir}")
    with backup_lock(backup_dir):
        _report(progress, "lock", 1, 1, "lock held")
        now = datetime.now(timezone.utc)
        database = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(url.database or backend).stem) or backend
        kind = "sqlite3" if backend == "sqlite" else "sql"
        filename = f"{now:%Y%m%d-%H%M%S-%f}.{database}.{kind}.gz"
        final_path = backup_dir / filename
        # Built under a hidden temporary name and renamed when complete, so a crash
        # never leaves a truncated file that rotation or a restore could pick up.
        partial_path = backup_dir / f".{filename}.partial"
        table_count = None
        try:
            if backend == "sqlite":
                snapshot_path = backup_dir / f".{filename}.snapshot"
                try:
                    _sqlite_snapshot(url, snapshot_path, progress)
                    table_count = _sqlite_table_count(snapshot_path)
                    _report(progress, "compress", 0, 1, "compressing")
                    _gzip_file(snapshot_path, partial_path)
                    _report(progress, "compress", 1, 1, "compressed")
                finally:
                    snapshot_path.unlink(missing_ok=True)
            else:
                _dump_to_gzip(url, partial_path, progress)

            _report(progress, "checksum", 0, 1, "computing SHA-256")
            with open(partial_path, "rb") as handle:
                os.fsync(handle.fileno())
            checksum = file_sha256(partial_path)
            os.replace(partial_path, final_path)
            _write_atomically(final_path.with_name(filename + CHECKSUM_SUFFIX), f"{checksum}  {filename}\n")
            _report(progress, "checksum", 1, 1, checksum)
        except BaseException:
            partial_path.unlink(missing_ok=True)
            raise

        _write_atomically(backup_dir / LATEST_NAME, filename + "\n")
        _report(progress, "rotate", 0, 1, f"keeping the {keep} newest backups")
        deleted = _rotate(backup_dir, keep)
        _report(progress, "rotate", 1, 1, f"deleted {len(deleted)}")

    result = {
        "filename": filename,
        "path": str(final_path),
        "size_bytes": final_path.stat().st_size,
        "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "checksum": f"sha256:{checksum}",
        "table_count": table_count,
        "backend": backend,
        "kept": keep,
        "deleted": deleted,
    }
    _report(progress, "done", 1, 1, f"wrote {filename}")
    return result


def restore_sqlite(backup_path: str | Path, target_path: str | Path) -> Path:
    """Verify a SQLite backup and unpack it over ``target_path`` (atomically)."""
    backup_path, target_path = Path(backup_path), Path(target_path)
    match = BACKUP_NAME.match(backup_path.name)
    if not match or match.group(3) != "sqlite3":
        raise BackupError(f"{backup_path.name} is not a SQLite backup")
    verify_backup(backup_path)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = target_path.with_name(f".{target_path.name}.restoring")
    try:
        with gzip.open(backup_path, "rb") as gz, open(temporary, "wb") as plain:
            shutil.copyfileobj(gz, plain, COPY_CHUNK)
        connection = sqlite3.connect(temporary)
        try:
            status = connection.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            connection.close()
        if status != "ok":
            raise BackupError(f"restored database fails integrity_check: {status}")
        os.replace(temporary, target_path)
    finally:
        temporary.unlink(missing_ok=True)
    return target_path
