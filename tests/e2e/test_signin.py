"""Sign-in and roles in a real headless Chromium against a real OpenID Connect provider.

`oidc-provider-mock` runs in a thread as the team's identity provider; the app is started with a
secrets file whose `[auth]` section points at it, and with a roles file: one administrator by
e-mail, annotators by group, everyone else a viewer. Each person signs in through the provider's
own form, in their own browser.
"""

from __future__ import annotations

import secrets

import pytest
from test_browser import SHOTS, Page, chromium, streamlit_app

SIDEBAR = '//*[@data-testid="stSidebar"]'
ADMIN, ANNOTATOR, VIEWER = "chen.admin@hospital.example", "wang.label@hospital.example", "li.view@hospital.example"


@pytest.fixture(scope="module")
def team_server(demo_home, tmp_path_factory):
    """The app on the demo collection with sign-in through a live OpenID Connect provider."""
    from oidc_provider_mock import User, run_server_in_thread

    people = [User(sub=ADMIN, claims={"email": ADMIN}),
              User(sub=ANNOTATOR, claims={"email": ANNOTATOR, "groups": ["medsearch-annotators"]}),
              User(sub=VIEWER, claims={"email": VIEWER})]
    config = tmp_path_factory.mktemp("team")
    roles = config / "roles.toml"
    roles.write_text(f'default = "viewer"\n[people]\n"{ADMIN}" = "admin"\n[groups]\n"medsearch-annotators" = "annotator"\n',
                     encoding="utf-8")
    with run_server_in_thread(user_claims=people) as provider:
        issuer = f"http://localhost:{provider.server_port}"
        (config / "secrets.toml").write_text(
            '[auth]\nredirect_uri = "http://localhost:{port}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_hex(32)}"\nclient_id = "medsearch"\nclient_secret = "team-secret"\n'
            f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n', encoding="utf-8")
        with streamlit_app(demo_home, "--secrets.files", str(config / "secrets.toml"),
                           log_name="streamlit-signin-server.log", MEDSEARCH_ROLES=str(roles)) as running:
            yield running


@pytest.fixture
def person():
    """A fresh browser per person (their own cookies)."""
    drivers = []

    def open_as(server, email: str) -> Page:
        drivers.append(chromium())
        page = Page(drivers[-1], "en", server, email.split("@")[0])
        page.driver.get(server.url)
        page.text_appears("Sign in to search")
        assert "Corpus" not in page.driver.find_element("tag name", "body").text  # nothing else before sign-in
        page.click_text("Sign in")
        page.xpath(f'//button[@value="{email}"]').click()  # the provider's own form: sign in as this person
        page.text_appears(f"Signed in as {email}")
        return page

    yield open_as
    for driver in drivers:
        driver.quit()


def sidebar_text(page: Page) -> str:
    return page.xpath(SIDEBAR).text


def test_a_viewer_searches_but_cannot_delete_or_train(team_server, person):
    page = person(team_server, VIEWER)
    assert "viewer" in sidebar_text(page)
    assert "Fine-tune" not in sidebar_text(page) and "Annotate" not in sidebar_text(page)
    page.click_text("Corpus", SIDEBAR)
    page.xpath('//*[@data-testid="stDataFrame"]')  # the collections table (drawn on a canvas)
    page.settle()
    body = page.driver.find_element("tag name", "body").text
    assert "Delete" not in body and "Rebuild" not in body and "Add documents" not in body
    assert not page.driver.find_elements("xpath", '//input[@type="file"]')
    page.shot("signin-viewer-corpus")
    page.driver.get(f"{team_server.url}/finetune")  # typed by hand: not a page this person has
    page.text_appears("Search medical text")
    assert "Fine-tune a dense retriever" not in page.driver.find_element("tag name", "body").text


def test_an_admin_can_delete_and_reach_fine_tune(team_server, person):
    page = person(team_server, ADMIN)
    assert "administrator" in sidebar_text(page)
    page.click_text("Corpus", SIDEBAR)
    page.click_text("Collections")
    page.xpath('//button[.//p[normalize-space()="Delete"]]')
    page.shot("signin-admin-corpus")
    page.click_text("Fine-tune", SIDEBAR)
    page.text_appears("Fine-tune a dense retriever")


def test_labels_are_saved_under_the_signed_in_annotator(team_server, person, restore_demo):
    from selenium.webdriver.common.keys import Keys

    from medsearch.store import Store

    page = person(team_server, ANNOTATOR)
    assert "annotator" in sidebar_text(page) and "Fine-tune" not in sidebar_text(page)
    page.click_text("Annotate", SIDEBAR)
    page.text_appears(f"Labeling as {ANNOTATOR}")
    assert not page.driver.find_elements("xpath", '//input[@aria-label="Your name (annotator)"]')
    page.xpath('//input[@aria-label="Query"]').send_keys("What is gout?", Keys.ENTER)
    page.click_text("✓ Positive")
    page.text_appears("labeled: ✓ Positive")
    page.text_appears("My latest labels")
    page.shot("signin-annotator")
    newest = Store.of("demo", restore_demo).rows("labels", 1)[0]
    assert (newest["query"], newest["annotator"]) == ("What is gout?", ANNOTATOR)
    assert (SHOTS / "signin-annotator-wang.label.png").stat().st_size > 20_000
