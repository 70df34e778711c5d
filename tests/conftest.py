"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests never touch the user's collections or converted models.
os.environ["MEDSEARCH_HOME"] = tempfile.mkdtemp(prefix="medsearch-test-home-")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The shared real data folder (/work/shared/data); skips the test when missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Every test runs as on a machine without a model hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """A home folder holding the built demo collection (built once per test session)."""
    from medsearch.demo import ensure_demo

    home = tmp_path_factory.mktemp("demo-home")
    ensure_demo(home)
    return home


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's home folder (collections and a converted model of ~470 MB)."""
    shutil.rmtree(os.environ["MEDSEARCH_HOME"], ignore_errors=True)
