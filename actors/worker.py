"""Worker entrypoint: ``python -m actors.worker --queue=heavy|light``.

A thin layer over Dramatiq's own worker CLI that picks the queue's broker module and
its concurrency: one job at a time per heavy process (and no prefetching, so a second
heavy job waits in Redis for a free worker instead of in this one's memory), several
threads for the light queue.
"""

from __future__ import annotations

import argparse
import os
import sys

from actors.registry import grace_seconds

CONCURRENCY = {
    "heavy": {"threads": 1, "prefetch": 1},
    "light": {"threads": int(os.environ.get("LIGHT_WORKER_THREADS", "4")), "prefetch": 0},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actors.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--queue", required=True, choices=sorted(CONCURRENCY))
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--threads", type=int, help="threads per process (heavy: 1, light: LIGHT_WORKER_THREADS or 4)")
    args = parser.parse_args(argv)

    settings = CONCURRENCY[args.queue]
    threads = args.threads or settings["threads"]
    # Read by actors.registry: one thread means a job's memory peak can be exact.
    os.environ["WORKER_THREADS"] = str(threads)
    if settings["prefetch"]:
        # Read by dramatiq.worker at import time.
        os.environ.setdefault("dramatiq_queue_prefetch", str(settings["prefetch"]))

    from dramatiq import cli

    # The grace period runs inside the job (GracefulShutdown); Dramatiq's own timeout
    # only has to outlast it.
    shutdown_timeout_ms = int((grace_seconds() + 15) * 1000)
    dramatiq_args = cli.make_argument_parser().parse_args([
        f"actors.queues.{args.queue}:broker",
        "--queues", args.queue,
        "--processes", str(args.processes),
        "--threads", str(threads),
        "--worker-shutdown-timeout", str(shutdown_timeout_ms),
        "--path", os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    ])
    return cli.main(dramatiq_args)


if __name__ == "__main__":
    sys.exit(main())
