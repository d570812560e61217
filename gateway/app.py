"""The gateway: a small Falcon app that routes from the operation catalog.

It never imports actor or analysis modules: it validates against the catalog, writes
the job record and sends the Dramatiq message by name.
"""

from __future__ import annotations

import falcon

from gateway import encoding, errors, health, jobs
from gateway.backend import Backend


def create_app(backend: Backend | None = None) -> falcon.App:
    backend = backend or Backend.from_env()
    app = falcon.App(media_type=falcon.MEDIA_JSON)
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = encoding.json_handler()
    errors.install(app)
    # One field name for both job ids and operation names: Falcon requires the same
    # name at the same position of every route below /api/jobs/.
    app.add_route("/api/jobs/history", jobs.History(backend))
    app.add_route("/api/jobs/{ident}/submit", jobs.Submit(backend))
    app.add_route("/api/jobs/{ident}/status", jobs.Status(backend))
    app.add_route("/api/jobs/{ident}/result", jobs.Result(backend))
    app.add_route("/api/jobs/{ident}", jobs.Job(backend))
    app.add_route("/api/health", health.Health())
    app.add_route("/api/health/ready", health.Ready(backend))
    return app
