"""``pubtator_update``: publications and gene mentions from the PubTator3 search API."""

from __future__ import annotations

import os

from actors.analysis import pubtator
from actors.datastore.base import shared_engine
from actors.errors import JobError, TransientJobError
from actors.progress import callback


def run(params: dict) -> dict:
    try:
        return pubtator.update_publications(
            shared_engine(),
            query=params["query"],
            max_pages=params["max_pages"],
            base_url=os.environ.get("PUBTATOR_BASE_URL") or pubtator.DEFAULT_BASE_URL,
            rate_limit_per_second=float(os.environ.get("PUBTATOR_RATE_LIMIT_PER_SECOND", "3")),
            progress=callback,
        )
    except pubtator.PubTatorUnavailableError as e:
        # The API kept failing through its own retries: worth another go later.
        raise TransientJobError(str(e), code="UPSTREAM_UNAVAILABLE")
    except pubtator.PubTatorRequestError as e:
        raise JobError(str(e), code="UPSTREAM_REJECTED")
    except pubtator.PubTatorResponseError as e:
        raise JobError(str(e), code="UPSTREAM_INVALID_RESPONSE")
