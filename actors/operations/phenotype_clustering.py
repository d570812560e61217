"""The `phenotype_clustering` operation.

Its analysis is not wired in yet: a job validates its parameters and then fails with
NOT_IMPLEMENTED rather than return something that looks like a result.
"""

from __future__ import annotations

from actors.errors import NotImplementedYet


def run(params: dict) -> dict:
    raise NotImplementedYet("phenotype_clustering is accepted and routed, but its analysis is not implemented yet")
