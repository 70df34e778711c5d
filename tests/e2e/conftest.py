"""Browser tests: a failed test's report ends with the tail of the Streamlit server's log."""

from __future__ import annotations

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("server")
    if report.failed and server is not None and call.when in ("setup", "call"):
        state = server.died() or "the Streamlit server is still running"
        report.sections.append((f"Streamlit server log ({server.log}), last lines; {state}", server.tail()))
