"""The Answers page through AppTest: a streamed, cited answer; ratings and wrong citations reach the store."""

from medsearch.store import Store

PAGE = "pages/answers.py"


def test_example_question_gets_a_cited_extractive_answer(demo_home, open_app):
    app = open_app(demo_home, "zh", PAGE)
    assert "辅助而不取代临床判断" in app.info[0].value
    next(b for b in app.button if b.label == "孕妇能吃头孢吗？").click().run()
    assert not app.exception
    answer = next(m.value for m in app.markdown if "](#passage-" in m.value)
    assert "头孢" in answer
    assert any("抽取式回答" in c.value for c in app.caption)
    assert any(c.value.startswith("检索") and "毫秒" in c.value for c in app.caption)
    cited = [m.value for m in app.markdown if m.value.startswith("**\\[") and "已引用" in m.value]
    assert cited and len([s for s in app.subheader if s.value == "段落"]) == 1


def test_wrong_citation_becomes_a_negative_triplet_and_ratings_are_saved(demo_home, open_app):
    app = open_app(demo_home, "en", PAGE)
    app.text_input(key="question").input("How do I recognize a stroke?").run()
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


def test_unreachable_language_model_gives_a_clear_message(demo_home, open_app):
    app = open_app(demo_home, "en", PAGE)
    app.radio(key="generator-kind").set_value("openai").run()
    app.text_input(key="llm-url").input("http://127.0.0.1:9/v1").run()
    app.text_input(key="question").input("asthma").run()
    next(b for b in app.button if b.label == "Answer").click().run()
    assert not app.exception
    assert any("No answer" in e.value and "unreachable" in e.value for e in app.error)
