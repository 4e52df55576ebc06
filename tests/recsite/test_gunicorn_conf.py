"""``recsite/gunicorn.conf.py``: the worker model its environment selects (read in a
process of its own: the file sets environment variables as gunicorn loads it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def threads_of(tmp_path: Path, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy; c = runpy.run_path('recsite/gunicorn.conf.py'); print(c['threads'])",
        ],
        cwd=ROOT,
        env={**clean, "RECSITE_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_the_default_is_the_sync_worker(tmp_path):
    # one thread: gunicorn picks its sync worker (more threads select gthread)
    assert threads_of(tmp_path) == 1


@pytest.mark.parametrize("threads", ["2", "4"])
def test_gunicorn_threads_selects_threads(tmp_path, threads):
    assert threads_of(tmp_path, GUNICORN_THREADS=threads) == int(threads)
