"""The project's commands: ``nox -s up`` runs the stack, ``nox -s tests`` tests it,
``nox -s bench`` measures it. Each session installs the pinned requirements itself."""

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


def _install(session: nox.Session) -> None:
    session.install("-r", "requirements/dev.txt")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite, against real Redis servers, workers and gateways it starts itself."""
    _install(session)
    session.run("pytest", "-c", "tests/pytest.ini", "--rootdir", ".", *(session.posargs or ["tests"]))


@nox.session(python=PYTHON)
def up(session: nox.Session) -> None:
    """Redis, the gateway on http://127.0.0.1:8080, one heavy and two light workers."""
    _install(session)
    # Give the stack time to stop its processes gracefully after Ctrl-C.
    session.run("python", "-m", "infra.stack", interrupt_timeout=90, terminate_timeout=30)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Throughput against bare Dramatiq; the heavy analyses; gateway latency and memory under load."""
    _install(session)
    session.run("python", "-m", "tests.benchmarks.throughput")
    session.run("python", "-m", "tests.benchmarks.heavy")


@nox.session(python=PYTHON)
def faults(session: nox.Session) -> None:
    """Fault injection: killed workers, poison jobs, memory limits, Redis and gateway
    restarts, then a chaos run of a few thousand jobs; prints counts and recovery times."""
    _install(session)
    session.run("pytest", "-c", "tests/pytest.ini", "--rootdir", ".", "-s", "tests/faults", "-k", "not chaos")
    session.run("python", "-m", "tests.faults.chaos", *session.posargs)


@nox.session(python=PYTHON)
def lock(session: nox.Session) -> None:
    """Recompile requirements/*.txt from requirements/*.in (pip-tools)."""
    session.install("pip-tools")
    for name in ("gateway", "worker", "dev"):
        session.run(
            "pip-compile", "--quiet", "--strip-extras", "--no-emit-index-url", "--no-emit-find-links",
            "--output-file", f"requirements/{name}.txt", f"requirements/{name}.in",
        )
