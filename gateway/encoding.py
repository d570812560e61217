"""Fast JSON for the gateway's hot paths (orjson): reading job results from Redis and
writing responses. A finished analysis's result is 100+ KB of JSON; with the standard
library its decode and re-encode dominate a status poll."""

from __future__ import annotations

import falcon
import orjson
from dramatiq.encoder import DecodeError, Encoder


class OrjsonEncoder(Encoder):
    """Reads what Dramatiq's JSONEncoder wrote on the workers (same JSON, faster)."""

    def encode(self, data) -> bytes:
        return orjson.dumps(data)

    def decode(self, data: bytes):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise DecodeError(f"failed to decode {data[:100]!r}", data, e) from None


def json_handler() -> falcon.media.JSONHandler:
    return falcon.media.JSONHandler(dumps=lambda obj: orjson.dumps(obj).decode(), loads=orjson.loads)
