"""The Answers page through AppTest: a streamed, cited answer; ratings and wrong citations reach the store."""

import json
from html import unescape as visible

from medsearch.store import Store

PAGE = "views/answers.py"


def test_example_question_gets_a_cited_extractive_answer(demo_home, open_app):
    app = open_app(demo_home, "zh", PAGE)
    assert "辅助而不取代临床判断" in app.info[0].value
    next(b for b in app.button if b.label == "孕妇能吃头孢吗？").click().run()
    assert not app.exception
    answer = next(m.value for m in app.markdown if "](#passage-" in m.value)
    assert "头孢" in answer
    assert any("抽取式回答" in c.value for c in app.caption)
    assert any(c.value.startswith("检索") and "毫秒" in c.value for c in app.caption)
    cited = [m.value for m in app.markdown if visible(m.value).startswith("**[") and "已引用" in m.value]
    assert cited and len([s for s in app.subheader if s.value == "段落"]) == 1
    assert visible(app.subheader[0].value) == "回答的问题：孕妇能吃头孢吗？"  # the answer says which question it answers
    app.text_input(key="question").input("How do I recognize a stroke?")
    app.button[0].click().run()  # the form's Ask button
    assert visible(app.subheader[0].value) == "回答的问题：How do I recognize a stroke?"
    assert not any("孕妇能吃头孢吗" in visible(s.value) for s in app.subheader)


def test_wrong_citation_becomes_a_negative_triplet_and_ratings_are_saved(demo_home, open_app):
    app = open_app(demo_home, "en", PAGE)
    app.text_input(key="question").input("How do I recognize a stroke?")
    next(b for b in app.button if b.label == "Answer").click().run()
    answer_id = Store.of("demo", demo_home).rows("answers", 1)[0]["id"]
    next(b for b in app.button if b.label == "This citation is wrong").click().run()
    assert not app.exception
    store = Store.of("demo", demo_home)
    triplet = store.rows("triplets", 1)[0]
    assert (triplet["query"], triplet["source"], triplet["status"]) == ("How do I recognize a stroke?", "answer", "incomplete")
    feedback = store.rows("feedback", 1)[0]
    assert (feedback["answer_id"], feedback["kind"], feedback["passage"]) == (answer_id, "wrong_citation", 1)
    app.feedback[0].set_value(0).run()
    assert store.rows("feedback", 1)[0]["kind"] == "down"


def _endpoints(tmp_path, monkeypatch, text: str) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("MEDSEARCH_ENDPOINTS", str(path))


def test_unreachable_language_model_gives_a_clear_message(demo_home, open_app, tmp_path, monkeypatch):
    _endpoints(tmp_path, monkeypatch, '[chat.gone]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n')
    app = open_app(demo_home, "en", PAGE)
    app.radio(key="generator-kind").set_value("gone").run()
    app.text_input(key="question").input("asthma")
    next(b for b in app.button if b.label == "Answer").click().run()
    assert not app.exception
    assert any("No answer" in e.value and "unreachable" in e.value for e in app.error)


def test_a_visitor_cannot_send_the_server_key_anywhere(demo_home, open_app, tmp_path, monkeypatch, endpoint):
    """Endpoints come from the server's file: the page has no URL or model field, the key goes to the configured
    server only, and a server that echoes the key in its error never gets it shown or stored."""
    from tests.chat_server import _Chat

    monkeypatch.setenv("OPENAI_API_KEY", "global-secret")
    monkeypatch.setenv("TEAM_LLM_KEY", "team-secret")
    _endpoints(tmp_path, monkeypatch, f'[chat.team]\nbase_url = "{endpoint}"\nmodel = "plain"\napi_key_env = "TEAM_LLM_KEY"\n'
                                      f'[chat.leaky]\nbase_url = "{endpoint}"\nmodel = "leaky"\napi_key = "file-secret"\n')
    app = open_app(demo_home, "en", PAGE)
    assert [box.key for box in app.text_input] == ["question"]  # nothing else a visitor can type
    assert app.radio(key="generator-kind").options == ["Extractive (offline, no language model)",
                                                        "team: plain (OpenAI-compatible server)",
                                                        "leaky: leaky (OpenAI-compatible server)"]
    app.radio(key="generator-kind").set_value("team").run()
    app.text_input(key="question").input("What is gout?")
    next(b for b in app.button if b.label == "Answer").click().run()
    assert not app.exception
    assert any("Metformin" in m.value for m in app.markdown)
    assert [(r["path"], r["auth"]) for r in _Chat.requests] == [("/v1/chat/completions", "Bearer team-secret")]

    app.radio(key="generator-kind").set_value("leaky").run()
    next(b for b in app.button if b.label == "Answer").click().run()
    shown = visible(" ".join(e.value for e in app.error))
    assert "not valid" in shown and "file-secret" not in shown and "***" in shown
    stored = Store.of("demo", demo_home).rows("answers", 5)
    assert stored and not any("secret" in json.dumps(row) for row in stored)
