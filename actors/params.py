"""Parameter validation against the catalog's JSON Schemas, shared by gateway and workers."""

from __future__ import annotations

from functools import lru_cache

from jsonschema import Draft202012Validator

from actors.catalog import CATALOG, Operation, with_defaults


class InvalidParams(ValueError):
    def __init__(self, message: str, details: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(CATALOG[name].params_schema)


def validate(operation: Operation, params) -> dict:
    """Return the parameters with defaults filled in, or raise InvalidParams."""
    if not isinstance(params, dict):
        raise InvalidParams(
            "parameters must be a JSON object",
            [{"field": "", "problem": f"expected an object, got {type(params).__name__}"}],
        )
    errors = sorted(_validator(operation.name).iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        details = [
            {"field": ".".join(str(p) for p in error.absolute_path), "problem": error.message[:300]}
            for error in errors[:20]
        ]
        raise InvalidParams(f"invalid parameters for {operation.name}", details)
    return with_defaults(operation, params)
