"""Start-up time, as a new user meets it: `streamlit run app.py`, a browser opens it, types a query, sees results.

    python bench/startup.py [--runs 1] [--out bench/startup.md]

Two cases, each in a fresh server process: a fresh home (`MEDSEARCH_HOME` empty: the demo collection is
built and multilingual-e5 converted on first start), then the same home again (everything on disk).
Measured in headless Chromium from launching the server to the first result card of a query, and, after
that, the first extractive answer on the Answers page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY, QUESTION = "血压升高应该怎么办？", "孕妇能吃头孢吗？"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,1300"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def wait_for(driver, xpath: str, timeout: float = 600):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: next((e for e in d.find_elements("xpath", xpath) if e.is_displayed()), None))


def one_start(home: Path) -> dict:
    """Seconds from launching the server to the first search result, then to the first answer."""
    from selenium.webdriver.common.keys import Keys

    port, start = free_port(), time.perf_counter()
    env = {**os.environ, "MEDSEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
                               "--server.port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    driver = browser()
    try:
        url = f"http://localhost:{port}"
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        up = time.perf_counter() - start
        driver.get(f"{url}/?lang=zh")
        box = wait_for(driver, '//input[@aria-label="问题或关键词"]')
        box.send_keys(QUERY, Keys.ENTER)
        wait_for(driver, '//*[contains(text(), "条结果")]')
        first_result = time.perf_counter() - start
        driver.get(f"{url}/answers?lang=zh")
        box = wait_for(driver, '//input[@aria-label="问题"]')
        asked = time.perf_counter()
        box.send_keys(QUESTION, Keys.ENTER)
        wait_for(driver, '//a[starts-with(@href, "#passage-")]')
        answer = time.perf_counter() - asked
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=30)
    return {"server_up": round(up, 1), "first_result": round(first_result, 1), "first_answer": round(answer, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "startup.md")
    args = parser.parse_args()
    rows, load = [], os.getloadavg()[0]
    for run in range(args.runs):
        home = Path(tempfile.mkdtemp(prefix="medsearch-startup-"))
        try:
            for case in ("fresh home", "existing home"):
                rows.append({"run": run + 1, "case": case, **one_start(home)})
                print(rows[-1], flush=True)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    lines = ["# Start-up: launching the app to the first result and the first answer", "",
             f"{args.runs} run(s) of each case on {time.strftime('%Y-%m-%d')}, 2 CPU cores (load average "
             f"{load:.1f} when it began), headless Chromium, Chinese UI. Reproduce: `python bench/startup.py`. "
             "See the script's docstring for what is timed.", "",
             "| run | case | server answers (s) | first search result (s) | first answer, from Enter (s) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['case']} | {r['server_up']} | {r['first_result']} | {r['first_answer']} |" for r in rows]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
