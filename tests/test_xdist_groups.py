"""The README's test command keeps ``xdist_group`` tests on one worker.

`tests/test_read_only.py` changes and restores directory modes for the
whole module, so two workers running parts of it race (a command run as
nobody then cannot import its own dependencies). pytest-xdist's
``--dist loadgroup`` keeps a group on one worker, but it has silently
stopped doing so with some pytest releases (pytest-dev/pytest-xdist#1386):
this runs a small suite the way pyproject runs ours and checks it did.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GROUPED = """
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("n", range(6))
def test_grouped(n):
    pass
"""
LOOSE = """
import pytest


@pytest.mark.parametrize("n", range(6))
def test_loose(n):
    pass
"""


@pytest.mark.skipif("xdist" not in sys.modules, reason="needs pytest-xdist")
def test_a_module_marked_with_an_xdist_group_runs_on_one_worker(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "test_loose.py").write_text(LOOSE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
         "-p", "no:cacheprovider", "-c", "/dev/null", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {
        line.split()[0]
        for line in done.stdout.splitlines()
        if line.startswith("[gw") and "test_grouped" in line
    }
    assert len(workers) == 1, done.stdout
