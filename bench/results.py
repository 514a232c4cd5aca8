"""Benchmark results kept as files, one per run: what docs/performance.md is made from.

Each benchmark that measures speed calls ``record`` with its figures; the file names the
commit, the date, the machine, its load and the command, so a figure can always be traced to
the code and the conditions that gave it. ``bench.report`` renders them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What ran the benchmark: cores, CPU, Python, and how busy the machine was (it is
    shared: the load average moves figures by tens of percent)."""
    return {
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "load_1m": round(os.getloadavg()[0], 2),
    }


def record_result(bench: str, figures: dict[str, Any], started_load: float | None = None) -> Path:
    """Write one run's figures to ``bench/results/<bench>/``; returns the file."""
    commit = _git("rev-parse", "--short=7", "HEAD") or "unknown"
    changed = bool(_git("status", "--porcelain", "--untracked-files=no"))
    now = datetime.now(UTC)
    about = machine()
    if started_load is not None:
        about["load_1m_at_start"] = round(started_load, 2)
    result = {
        "bench": bench,
        "commit": commit,
        "uncommitted_changes": changed,
        "date": now.isoformat(timespec="seconds"),
        "machine": about,
        "command": " ".join(["python -m", f"bench.{bench}", *sys.argv[1:]]),
        "figures": figures,
    }
    folder = RESULTS / bench
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{now.strftime('%Y%m%dT%H%M%SZ')}-{commit}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def load(bench: str) -> list[dict[str, Any]]:
    """Every recorded run of ``bench``, oldest first."""
    folder = RESULTS / bench
    runs = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    return sorted(runs, key=lambda run: str(run["date"]))
