"""Peak resident memory of this process.

Exact per job where a process runs one job at a time: writing 5 to
/proc/self/clear_refs resets Linux's high-water mark (VmHWM), so the peak read at the
end is the job's. A process running jobs on several threads reports its lifetime peak
(getrusage, a cheap system call): an upper bound shared by its jobs.
"""

from __future__ import annotations

import resource


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


def lifetime_peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
