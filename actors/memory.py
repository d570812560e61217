"""Peak resident memory of this process, from Linux's /proc (VmHWM), with a reset.

Writing 5 to /proc/self/clear_refs resets the high-water mark, so a worker can
measure the peak of the job it is running. Elsewhere both functions do nothing.
"""

from __future__ import annotations


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
