"""The progress callback the analyses take: ``progress(step, current, total, message)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

Progress = Callable[..., None]


def step_reporter(progress: Progress | None, steps: Sequence[str]) -> Callable[[str, str], None]:
    """``report(step, message)`` for an analysis whose stages are ``steps``, in order:
    current is the step's 1-based position, total the number of steps."""

    def report(step: str, message: str = "") -> None:
        if progress is not None:
            progress(step, steps.index(step) + 1, len(steps), message)

    return report
