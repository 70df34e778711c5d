"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
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

    def start(home: Path, lang: str | None = "en", page: str | None = None, query_params: dict | None = None) -> AppTest:
        monkeypatch.setenv("MEDSEARCH_HOME", str(home))
        app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180)
        if lang:  # None: the app decides (link, then browser locale)
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


def _milvus_ready(server, deadline: float) -> str:
    """Wait for a started Milvus server's health check; '' once healthy, else why it is not running."""
    import time
    import urllib.request

    while time.monotonic() < deadline:
        if server.server_proc.poll() is not None:
            log = Path(server.config.base_data_dir) / "logs" / "milvus-stderr.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            return f"the Milvus binary exited ({server.server_proc.returncode}): {' '.join(tail)[:200]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.webservice_port}/healthz", timeout=2) as reply:
                if b"OK" in reply.read():
                    return ""
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the Milvus server did not become healthy in 180 s")


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory) -> str:
    """A real Milvus standalone server (the `milvus` package's binary) for the whole session: its URI.
    Ports are the first free ones from Milvus's defaults (19530, ...); data lives in a tmp folder, removed after."""
    import time

    try:
        from milvus import MilvusServer
    except ImportError:
        pytest.skip("the milvus package (a Milvus server binary) is not installed")
    import socket

    with socket.socket() as probe:  # the embedded etcd's peer port is fixed: one Milvus server per machine
        if probe.connect_ex(("127.0.0.1", 2380)) == 0:
            pytest.fail("another Milvus server runs on this machine (its embedded etcd holds port 2380): stop it, "
                        "the tests start their own")
    base = tmp_path_factory.mktemp("milvus")
    server = MilvusServer(wait_for_started=False)
    server.set_base_dir(str(base))
    here = os.getcwd()  # start() changes directory, and leaves it changed when the binary cannot run
    try:
        server.start()
        failed = _milvus_ready(server, time.monotonic() + 180)
    except OSError as error:
        failed = f"cannot run the Milvus binary here: {error}"
    except BaseException:
        server.stop()
        raise
    finally:
        os.chdir(here)
    if failed:
        server.stop()
        pytest.skip(failed)
    yield f"http://127.0.0.1:{server.listen_port}"
    server.stop()
    shutil.rmtree(base, ignore_errors=True)
