"""A read-only home: every page of the app says so in one message, reading still works, nothing crashes.

The pages run in Streamlit's AppTest inside a process that sees the demo home read-only (a read-only bind
mount in a mount namespace of its own), each doing what writes: asking, labeling, deleting, training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = r"""
import json, sys
from html import unescape
from streamlit.testing.v1 import AppTest

def start(page):
    app = AppTest.from_file(sys.argv[1], default_timeout=300)
    app.session_state["lang"] = "en"
    app.switch_page(page)
    return app.run()

def press(app, label):
    return next(b for b in app.button if b.label == label).click().run()

def seen(app):
    return {"exception": [e.value for e in app.exception], "error": [unescape(e.value) for e in app.error],
            "markdown": " ".join(m.value for m in app.markdown)}

def then(app, step):
    # step(app) when the page got as far as showing what the step needs, else the page as it is (its message)
    try:
        return step(app)
    except (KeyError, StopIteration):
        return app

found = {}
found["search"] = seen(then(start("views/search.py"), lambda a: a.text_input(key="query").input("gout").run()))
def ask(app):
    app.text_input(key="question").input("What is gout?")  # in a form: the button sends it
    return press(app, "Answer")

found["answers"] = seen(then(start("views/answers.py"), ask))
found["annotate"] = seen(then(start("views/annotate.py"), lambda a: press(a.text_input(key="annotator").input("ro").run()
                              .text_input(key="annotate_query").input("What is gout?").run(), "✓ Positive")))
found["corpus"] = seen(then(start("views/corpus.py"), lambda a: press(press(a, "Delete"), "Yes, do it")))
found["finetune"] = seen(start("views/finetune.py"))
found["compare"] = seen(start("views/compare.py"))
found["learn"] = seen(start("views/learn.py"))
print(json.dumps(found))
"""


def test_every_page_says_a_read_only_home_in_one_message(demo_home, read_only):
    prefix = read_only(demo_home)
    done = subprocess.run([*prefix, sys.executable, "-c", SCRIPT, str(ROOT / "app.py")], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "MEDSEARCH_HOME": str(demo_home)},
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    pages = json.loads(done.stdout.strip().splitlines()[-1])
    for name, page in pages.items():
        assert not page["exception"], (name, page["exception"])
    assert not pages["search"]["error"] and "Gout" in pages["search"]["markdown"]  # reading still works
    for name in ("answers", "annotate", "corpus"):
        assert any("read-only" in e or "cannot be opened" in e for e in pages[name]["error"]), (name, pages[name])
        assert "Traceback" not in " ".join(pages[name]["error"])
    assert (demo_home / "demo").is_dir()  # the refused delete left the collection in place
