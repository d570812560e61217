"""The gateway stays small: no analysis stack, no actor modules, in its process or its install."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("sklearn", "pandas", "numpy", "scipy", "igraph", "leidenalg", "actors.operations", "actors.registry",
             "actors.analysis", "actors.middleware")


def test_gateway_process_imports_no_analysis_code():
    probe = (
        "import sys, json; import gateway.wsgi; "
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0"})
    modules = json.loads(out.stdout)
    assert "gateway.app" in modules and "actors.catalog" in modules  # the probe did load the app
    loaded = [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert loaded == []


def test_running_gateway_has_no_analysis_libraries_mapped(stack):
    # Every gunicorn process of the session stack: the master and its workers.
    pids = [stack.gateway.pid] + [
        int(p) for p in (Path(f"/proc/{stack.gateway.pid}/task/{stack.gateway.pid}/children").read_text().split())
    ]
    assert len(pids) >= 2
    for pid in pids:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert not re.search(r"/(sklearn|pandas|numpy|scipy|igraph)/", maps), pid


def test_gateway_requirements_carry_no_analysis_stack():
    pinned = (ROOT / "requirements" / "gateway.txt").read_text().lower()
    names = {line.split("==")[0].strip() for line in pinned.splitlines() if "==" in line}
    assert "falcon" in names and "dramatiq" in names
    assert not names & {"scikit-learn", "pandas", "numpy", "scipy", "python-igraph", "igraph", "leidenalg"}
