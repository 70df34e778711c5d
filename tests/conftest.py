"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import tempfile
from pathlib import Path

import pytest

# Tests never touch the user's collections or converted models.
os.environ["MEDSEARCH_HOME"] = tempfile.mkdtemp(prefix="medsearch-test-home-")

pytest_plugins = ["tests.chat_server"]  # the `endpoint` fixture: a local OpenAI-compatible chat server

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


@pytest.fixture
def open_app(monkeypatch):
    """Start app.py in Streamlit's AppTest on a home folder, in a UI language, optionally on a page."""
    from streamlit.testing.v1 import AppTest

    def start(home: Path, lang: str = "en", page: str | None = None, query_params: dict | None = None) -> AppTest:
        monkeypatch.setenv("MEDSEARCH_HOME", str(home))
        app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180)
        app.session_state["lang"] = lang
        for key, value in (query_params or {}).items():
            app.query_params[key] = value
        if page:
            app.switch_page(page)
        app.run()
        assert not app.exception
        return app

    return start


@pytest.fixture
def restore_demo(demo_home):
    """Tests that change the shared demo (a model added, labels stored) put it back as it was afterwards."""
    saved = demo_home.parent / f"{demo_home.name}-saved"
    parts = [p for p in (demo_home / "demo", demo_home / ".stores") if p.exists()]
    for part in parts:
        shutil.copytree(part, saved / part.name)
    yield demo_home
    for name in ("demo", ".stores"):
        shutil.rmtree(demo_home / name, ignore_errors=True)
        if (saved / name).exists():
            shutil.copytree(saved / name, demo_home / name)
    shutil.rmtree(saved)


@pytest.fixture
def read_only():
    """`read_only(home)`: a command prefix under which `home` is read-only: as root (whom permissions do not stop)
    a read-only bind mount in a mount namespace of its own, else write permission taken from every folder
    under it until the test ends. Skips where neither can be done."""
    taken: list[Path] = []

    def prefix(home: Path) -> list[str]:
        if os.geteuid() != 0:
            taken.extend(p for p in [home, *home.rglob("*")] if p.is_dir())
            for folder in taken:
                folder.chmod(0o555)
            return []
        command = ["unshare", "-m", "sh", "-c",
                   'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"', str(home)]
        if not shutil.which("unshare") or subprocess.run([*command, "touch", str(home / "probe")]).returncode == 0:
            pytest.skip("cannot make a read-only folder here")
        return command

    yield prefix
    for folder in taken:
        folder.chmod(0o755)


@pytest.fixture
def held_elsewhere():
    """`with held_elsewhere(name, action, home):` another thread holds the collection's write lock meanwhile."""
    from contextlib import contextmanager

    from medsearch.locks import writing

    @contextmanager
    def hold(name: str, action: str, home: Path):
        held, release = threading.Event(), threading.Event()

        def holder() -> None:
            with writing(name, action, home):
                held.set()
                release.wait(30)

        thread = threading.Thread(target=holder)
        thread.start()
        held.wait(10)
        try:
            yield
        finally:
            release.set()
            thread.join()

    return hold
