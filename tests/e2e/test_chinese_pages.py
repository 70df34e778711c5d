"""Every page in the Chinese UI, in a real Chromium: what the browser shows (Streamlit's own widgets included,
such as the file uploader) has no run of 4+ ASCII letters outside the allow-list of tests/test_app_chinese.py,
the demo's own document text and example queries. Screenshots of each page go to test-artifacts/screenshots/."""

from __future__ import annotations

import pytest

from tests.e2e.test_browser import Page, browser, server  # noqa: F401  (fixtures)
from tests.test_app_chinese import ALLOWED, ENGLISH, people_words

PAGES = ["", "compare", "answers", "corpus", "annotate", "finetune", "learn"]
# The text a reader sees: visible text nodes, without Material icon names (ligatures drawn as icons) and
# without text CSS shrinks to nothing (the uploader's English, replaced by Chinese words).
SHOWN_TEXT = """
const out = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode, el = node.parentElement;
  if (!el || el.closest('[data-testid="stIconMaterial"], style, script, noscript')) continue;
  const style = getComputedStyle(el);
  if (style.fontFamily.includes('Material')) continue;  // an icon drawn from its name, as in :material/check:
  if (style.display === 'none' || style.visibility === 'hidden' || parseFloat(style.fontSize) === 0) continue;
  if (!el.getClientRects().length) continue;
  out.push(node.textContent);
}
return out.join('\\n');
"""


@pytest.fixture
def corpus_words(demo_home):
    return people_words(demo_home)


def test_every_page_in_chinese_shows_no_english(server, browser, corpus_words):  # noqa: F811
    page = Page(browser, "zh", server, "chinese-scan")
    found = {}
    for name in PAGES:
        browser.get(f"{server.url}/{name}?lang=zh")
        page.text_appears("语言 · Language")  # the sidebar is drawn
        page.settle()
        english = set(ENGLISH.findall(browser.execute_script(SHOWN_TEXT))) - ALLOWED - corpus_words
        if english:
            found[name] = sorted(english)
        page.shot(f"zh-page-{name or 'search'}")
    assert not found, f"English in the Chinese UI: {found}"
