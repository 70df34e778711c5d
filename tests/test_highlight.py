"""Query-term highlighting: inert text, query words marked, single characters and stop words not."""

from medsearch.highlight import highlight


def test_query_words_are_marked_and_markup_stays_text():
    html = highlight("高血压患者应<b>限制</b>食盐。", "血压升高怎么办")
    assert html == "高<mark>血压</mark>患者应&#60;b&#62;限制&#60;&#47;b&#62;食盐。"


def test_single_characters_and_stop_words_are_not_marked():
    html = highlight("孕妇用药需谨慎，请遵医嘱服药。The vitamin C and the iron.", "孕妇可以吃什么药 the vitamin c")
    assert "<mark>孕妇</mark>" in html and "<mark>vitamin</mark>" in html
    assert "<mark>药</mark>" not in html and "<mark>C</mark>" not in html and "<mark>The</mark>" not in html
    assert html.count("<mark>") == 2


def test_question_words_are_not_marked():
    html = highlight("Do not drive to hospital yourself: a stroke needs an ambulance. 孕妇应该怎么用药？",
                     "How do I recognize a stroke? 孕妇应该怎么办")
    assert html.count("<mark>") == 2 and "<mark>stroke</mark>" in html and "<mark>孕妇</mark>" in html
