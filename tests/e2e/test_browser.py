"""End to end in a real headless Chromium: `streamlit run app.py` on a free port, driven by Selenium.

Each language gets its own browser session: switch the UI language with the sidebar switch, search,
upload a file on the Corpus page, open Compare (and its per-query chart), get a cited answer, open Learn. Screenshots of
every page in both languages go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian chromium and chromium-driver")

WORDS = {
    "en": {"lang": "English", "box": "Question or keywords", "found": "results in", "corpus": "Corpus",
           "compare": "Compare BM25 vs dense", "learn": "Learn", "read": "qa.csv: 2 documents",
           "broken": "broken.pdf", "run_set": "Run all 40 judged queries", "wins": "Dense better on",
           "search": "Search", "query": "How do I recognize a stroke?",
           "answer_button": "Retrieve and answer", "answer": "Answer (extractive, no language model)",
           "answers": "Answers", "extractive": "Extractive answer"},
    "zh": {"lang": "中文", "box": "问题或关键词", "found": "条结果", "corpus": "语料",
           "compare": "BM25 与稠密检索对比", "learn": "入门讲解", "read": "qa.csv：2 篇文档",
           "broken": "broken.pdf", "run_set": "运行全部 40 条已标注查询", "wins": "稠密检索在",
           "search": "检索", "query": "血压升高应该怎么办？",
           "answer_button": "检索并回答", "answer": "回答（抽取式，未使用语言模型）",
           "answers": "回答", "extractive": "抽取式回答"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_home):
    from medsearch.metrics import evaluate_run

    evaluate_run({"q": {"d": 1}}, {"q": {"d": 1.0}})  # compile ranx's numba code into its disk cache first
    port = free_port()
    env = {**os.environ, "MEDSEARCH_HOME": str(demo_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1440,1300", "--lang=en-US"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


class Page:
    """Small helpers over the driver: wait for text, click by visible text, save screenshots."""

    def __init__(self, driver, lang: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.lang = driver, lang
        self.wait = WebDriverWait(driver, 300, poll_frequency=0.3)
        SHOTS.mkdir(parents=True, exist_ok=True)

    def xpath(self, path: str, visible: bool = True):
        from selenium.webdriver.common.by import By

        return self.wait.until(lambda d: next((e for e in d.find_elements(By.XPATH, path)
                                               if e.is_displayed() or not visible), None))

    def text_appears(self, text: str) -> None:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By

        try:
            self.wait.until(lambda d: text in d.find_element(By.TAG_NAME, "body").text)
        except TimeoutException:
            self.driver.save_screenshot(str(SHOTS / f"failed-{self.lang}.png"))
            raise AssertionError(f"'{text}' never appeared; page text: {self.driver.find_element(By.TAG_NAME, 'body').text[:600]}")
        self.settle()

    def settle(self) -> None:
        """Wait until Streamlit has finished running the script."""
        from selenium.webdriver.common.by import By

        time.sleep(0.5)
        self.wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'))

    def click_text(self, text: str, within: str = "") -> None:
        self.xpath(f'{within}//*[self::p or self::span][normalize-space()="{text}"]').click()

    def scroll_to(self, element) -> None:
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)

    def shot(self, name: str) -> Path:
        path = SHOTS / f"{name}-{self.lang}.png"
        self.settle()
        self.driver.save_screenshot(str(path))
        return path


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_search_upload_compare_learn(server, browser, lang, tmp_path):
    from selenium.webdriver.common.keys import Keys

    w = WORDS[lang]
    page = Page(browser, lang)
    browser.get(server)
    page.text_appears("Search medical text")  # the browser's locale is English
    page.click_text(w["lang"], '//*[@data-testid="stSidebar"]')
    page.text_appears(w["search"])

    box = page.xpath(f'//input[@aria-label="{w["box"]}"]')
    box.send_keys(w["query"], Keys.ENTER)
    page.text_appears(w["found"])
    page.wait.until(lambda d: d.find_elements("css selector", "mark"))  # query terms highlighted
    page.shot("search")

    page.click_text(w["corpus"], '//*[@data-testid="stSidebar"]')
    upload = page.xpath('//input[@type="file"]', visible=False)
    good = tmp_path / "qa.csv"
    good.write_text("id,question,answer\n1,头痛怎么办,多休息。\n2,What is asthma?,A chronic airway disease.\n",
                    encoding="utf-8")
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 broken")
    upload.send_keys(f"{good}\n{bad}")
    page.text_appears(w["read"])
    page.text_appears(w["broken"])
    page.shot("corpus")

    page.click_text(w["compare"], '//*[@data-testid="stSidebar"]')
    page.text_appears("nDCG@10")
    page.wait.until(lambda d: len(d.find_elements("css selector", ".ms-card.ms-both")) >= 2)
    page.shot("compare")
    page.click_text(w["run_set"])
    page.text_appears(w["wins"])
    page.scroll_to(page.xpath('//*[contains(@class, "plot-container")]'))
    page.shot("compare-chart")

    page.click_text(w["answers"], '//*[@data-testid="stSidebar"]')
    page.click_text(w["query"])
    page.text_appears(w["extractive"])
    page.xpath('//a[starts-with(@href, "#passage-")]')
    page.shot("answers")

    page.click_text(w["learn"], '//*[@data-testid="stSidebar"]')
    page.text_appears("BM25")
    page.shot("learn")
    page.click_text(w["answer_button"])
    page.text_appears(w["answer"])
    citation = page.xpath('//a[starts-with(@href, "#passage-")]')
    page.scroll_to(citation)
    page.shot("learn-answer")
    for name in ("search", "corpus", "compare", "compare-chart", "answers", "learn", "learn-answer"):
        assert (SHOTS / f"{name}-{lang}.png").stat().st_size > 20_000


def test_annotate_mine_train_compare(server, browser, restore_demo):
    """Issue flow in English: label a candidate, mine triplets, train a static model, use it, compare with it."""
    from selenium.webdriver.common.keys import Keys

    from medsearch.collection import Collection

    page, sidebar = Page(browser, "en"), '//*[@data-testid="stSidebar"]'
    browser.get(server)
    page.text_appears("Search medical text")
    page.click_text("Annotate", sidebar)
    page.xpath('//input[@aria-label="Your name (annotator)"]').send_keys("e2e", Keys.ENTER)
    page.xpath('//input[@aria-label="Query"]').send_keys("What is gout?", Keys.ENTER)
    page.text_appears("✓ Positive")
    page.click_text("✓ Positive")
    page.text_appears("labeled: ✓ Positive")
    page.shot("annotate")
    page.click_text("Mine triplets automatically")
    page.settle()
    page.click_text("Mine and save")
    page.text_appears("mined triplets from 40 pairs")
    page.shot("mine")

    page.click_text("Fine-tune", sidebar)
    page.xpath('//input[@aria-label="Model name (optional)"]').send_keys("e2e-static", Keys.ENTER)
    page.click_text("Start training")
    page.text_appears("Model 'e2e-static' is ready")
    page.scroll_to(page.xpath('//*[contains(@class, "plot-container")]'))
    page.shot("finetune")
    page.click_text("Use 'e2e-static' in collection 'demo'")
    page.text_appears("is now a dense model of 'demo'")
    page.click_text("Compare BM25 vs dense", sidebar)
    page.text_appears("nDCG@10")
    choose = page.xpath('//*[@data-testid="stSelectbox"][.//p[normalize-space()="Dense model"]]//input')
    choose.click()
    choose.send_keys("e2e-static", Keys.ENTER)
    page.text_appears("Dense: e2e-static")
    page.wait.until(lambda d: len(d.find_elements("css selector", ".ms-card")) >= 20)
    page.shot("compare-finetuned")
    assert len(Collection.open("demo", restore_demo).models) == 2
