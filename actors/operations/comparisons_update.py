"""``comparisons_update``: external NDD gene lists, normalised to HGNC ids, in one transaction."""

from __future__ import annotations

from actors.analysis import comparisons
from actors.datastore.base import shared_engine
from actors.errors import JobError, TransientJobError
from actors.progress import callback


def run(params: dict) -> dict:
    try:
        return comparisons.update_comparisons(shared_engine(), sources=params.get("sources"), progress=callback)
    except comparisons.ComparisonSourceError as e:
        # A list could not be fetched or read; the old comparison table stays in place.
        raise TransientJobError(str(e), code="SOURCE_UNAVAILABLE")
    except comparisons.ComparisonError as e:
        raise JobError(str(e), code="COMPARISON_FAILED")
