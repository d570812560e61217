"""``backup_create``: a compressed, checksummed, rotated snapshot of the data store."""

from __future__ import annotations

from actors.analysis import backup
from actors.datastore.base import backup_dir, shared_engine
from actors.errors import JobError
from actors.progress import callback


def run(params: dict) -> dict:
    try:
        return backup.create_backup(shared_engine(), backup_dir=backup_dir(), keep=params["keep"], progress=callback)
    except backup.BackupInProgressError as e:
        raise JobError(str(e), code="BACKUP_IN_PROGRESS")
    except backup.BackupError as e:
        raise JobError(str(e), code="BACKUP_FAILED")
