"""First start in a real Chromium, on a fresh home: the page lists the build's steps as they pass (each with its
time, the running one with its progress), the sidebar shows page titles from the first paint (never file names),
and a search works as soon as the demo is built. Screenshots in both languages."""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_browser import SHOTS, Page, chromium, streamlit_app

WORDS = {"zh": {"built": "演示文档集已构建", "done": "✓ 分块与分词", "box": "问题或关键词", "query": "孕妇能吃头孢吗？", "found": "条结果"},
         "en": {"built": "Demo collection built in", "done": "✓ Chunking and tokenizing", "box": "Question or keywords",
                "query": "How do I recognize a stroke?", "found": "results in"}}
FILE_NAMES = {"app", "annotate", "common", "compare", "corpus", "finetune", "learn", "search", "answers"}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_first_start_lists_its_steps_then_searches(tmp_path, lang):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    w = WORDS[lang]
    with streamlit_app(tmp_path / "home", log_name=f"streamlit-first-start-{lang}.log") as server:
        driver = chromium()
        try:
            page = Page(driver, lang, server, f"first-start-{lang}")
            start = time.perf_counter()
            driver.get(f"{server.url}/?lang={lang}")
            seen = set()
            while w["built"] not in driver.find_element(By.TAG_NAME, "body").text:
                seen |= {e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a')}
                assert time.perf_counter() - start < 120, "the demo was never built"
                time.sleep(0.1)
            page.xpath(f'//summary[contains(., "{w["built"]}")]').click()  # the finished build's status box
            page.text_appears(w["done"], settle=False)  # each finished step, with its time
            driver.save_screenshot(str(SHOTS / f"first-start-steps-{lang}.png"))
            box = page.xpath(f'//input[@aria-label="{w["box"]}"]')
            seen |= {e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a')}
            assert not {s.split("\n")[-1] for s in seen} & FILE_NAMES, seen
            box.send_keys(w["query"], Keys.ENTER)
            page.text_appears(w["found"])
            seconds = time.perf_counter() - start
            page.shot("first-result")
            (SHOTS.parent / f"first-start-{lang}.txt").write_text(
                f"fresh home, browser opened to first result: {seconds:.1f} s\n", encoding="utf-8")
            assert seconds < 180  # the README's measured target is 60 s; this only catches a hang
        finally:
            driver.quit()
