"""Worker entrypoint: ``python -m actors.worker --queue=heavy|light``.

A thin layer over Dramatiq's own worker CLI that picks the queue's broker module and
its concurrency: one job at a time per heavy process (and no prefetching, so a second
heavy job waits in Redis for a free worker instead of in this one's memory), several
threads for the light queue.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

from actors.registry import grace_seconds

CONCURRENCY = {
    "heavy": {"threads": 1, "prefetch": 1},
    "light": {"threads": int(os.environ.get("LIGHT_WORKER_THREADS", "4")), "prefetch": 0},
}
#: Memory per worker process, as the compose file limits the containers (MB).
DEFAULT_MEMORY_LIMIT_MB = {"heavy": 6144, "light": 1024}


def limit_memory(megabytes: int) -> None:
    """Cap this process and the workers it forks (RLIMIT_DATA: heap and private
    writable mappings, which is where analyses allocate). Past it an allocation fails
    with MemoryError inside the job, which then ends MEMORY_LIMIT while the worker goes
    on. A data-segment limit, not an address-space one: thread stacks and allocator
    reservations inflate address space far beyond what a process really uses. In a
    container the engine's cgroup limit applies as well."""
    if megabytes > 0:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actors.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--queue", required=True, choices=sorted(CONCURRENCY))
    parser.add_argument("--processes", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--threads", type=int, help="threads per process (heavy: 1, light: LIGHT_WORKER_THREADS or 4)")
    parser.add_argument("--memory-limit-mb", type=int,
                        help="memory per worker process, 0 for none (WORKER_MEMORY_LIMIT_MB; heavy 6144, light 1024)")
    args = parser.parse_args(argv)

    memory_mb = args.memory_limit_mb
    if memory_mb is None:
        memory_mb = int(os.environ.get("WORKER_MEMORY_LIMIT_MB") or DEFAULT_MEMORY_LIMIT_MB[args.queue])
    limit_memory(memory_mb)

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
