"""Roles from the server's roles file, the audit log of changes, and who is recorded on every store write."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from medsearch.access import LOCAL, PERMISSIONS, Role, Roles, User, load_roles
from medsearch.audit import history, record
from medsearch.records import MedSearchError
from medsearch.store import Store

ROLES = """
default = "viewer"
[people]
"Chen.Admin@Hospital.example" = "admin"
"wang@hospital.example" = "viewer"
[groups]
"medsearch-annotators" = "annotator"
"""


def test_roles_by_email_and_group_take_the_highest(tmp_path, monkeypatch):
    (tmp_path / "roles.toml").write_text(ROLES, encoding="utf-8")
    monkeypatch.delenv("MEDSEARCH_ROLES", raising=False)
    roles = load_roles(tmp_path)
    assert roles.user({"email": "chen.admin@hospital.example"}) == User("chen.admin@hospital.example", Role.ADMIN)
    assert roles.user({"email": "wang@hospital.example", "groups": ["medsearch-annotators"]}).role is Role.ANNOTATOR
    assert roles.user({"email": "someone@else.example"}).role is Role.VIEWER
    assert roles.user({"sub": "no-email"}) is None  # nobody without an address the provider vouches for
    assert roles.user({"email": "chen.admin@hospital.example", "email_verified": False}) is None


def test_what_each_role_may_do():
    viewer, annotator, admin = (User("x", role) for role in Role)
    assert [a for a in PERMISSIONS if viewer.may(a)] == ["search", "ask"]
    assert [a for a in PERMISSIONS if annotator.may(a)] == ["search", "ask", "label"]
    assert all(admin.may(a) for a in PERMISSIONS) and LOCAL.role is Role.ADMIN


def test_default_none_lets_only_listed_people_in(tmp_path, monkeypatch):
    path = tmp_path / "team-roles.toml"
    path.write_text('default = "none"\n[people]\n"a@h.example" = "annotator"\n', encoding="utf-8")
    monkeypatch.setenv("MEDSEARCH_ROLES", str(path))
    roles = load_roles(tmp_path / "elsewhere")
    assert roles.user({"email": "a@h.example"}).role is Role.ANNOTATOR
    assert roles.user({"email": "b@h.example"}) is None


@pytest.mark.parametrize("text", ['default = "superuser"\n', '[people]\n"a@h" = "owner"\n', "default = \n"])
def test_a_broken_roles_file_is_one_clear_error(tmp_path, monkeypatch, text):
    monkeypatch.delenv("MEDSEARCH_ROLES", raising=False)
    (tmp_path / "roles.toml").write_text(text, encoding="utf-8")
    with pytest.raises(MedSearchError, match="Roles file"):
        load_roles(tmp_path)


def test_no_roles_file_makes_everyone_a_viewer(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDSEARCH_ROLES", raising=False)
    assert load_roles(tmp_path) == Roles() and Roles().user({"email": "x@y"}).role is Role.VIEWER


def test_audit_lines_from_many_processes_stay_whole(tmp_path):
    code = ("import sys; from medsearch.audit import record\n"
            "for i in range(200): record('append', 'kb', sys.argv[1], sys.argv[2], documents=i, note='x' * 300)")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"user{n}", str(tmp_path)]) for n in range(4)]
    assert [p.wait() for p in procs] == [0] * 4
    lines = history(tmp_path, limit=10_000)
    assert len(lines) == 800 and {line["by"] for line in lines} == {f"user{n}" for n in range(4)}
    record("delete", "kb", "chen@h.example", tmp_path)
    assert history(tmp_path, 1)[0] | {"time": ""} == {"time": "", "action": "delete", "target": "kb",
                                                      "by": "chen@h.example"}


def test_answers_record_who_asked_also_in_an_older_store(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the answers table as MedSearch created it before answers had a user
        db.execute("CREATE TABLE answers (id INTEGER PRIMARY KEY, created TEXT NOT NULL, question TEXT NOT NULL, "
                   "answer TEXT NOT NULL, generator TEXT NOT NULL, extractive INTEGER NOT NULL, citations TEXT NOT NULL, "
                   "passages TEXT NOT NULL, retrieval_ms REAL NOT NULL, generation_ms REAL NOT NULL, "
                   "error TEXT NOT NULL DEFAULT '')")
        db.execute("INSERT INTO answers VALUES (1, 'then', 'q0', 'a0', 'extractive', 1, '[]', '[]', 1, 1, '')")
    store = Store(path)
    store.log_answer("q1", "a1", "extractive", True, [1], [], 1.0, 2.0, user="li@h.example")
    rows = store.rows("answers")
    assert [(r["question"], r["user"]) for r in rows] == [("q1", "li@h.example"), ("q0", "")]
    Store(path)  # opening it again adds nothing twice


def test_labels_and_triplets_record_the_annotator(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.label("gout?", "d1", "Gout is…", "positive", "wang@h.example")
    store.label("gout?", "d2", "Asthma is…", "negative", "li@h.example")
    assert [r["doc_id"] for r in store.labels_of("wang@h.example")] == ["d1"]
    store.import_triplets([{"query": "q", "positive": "p", "negative": "n"}], annotator="wang@h.example")
    assert store.rows("triplets")[0]["annotator"] == "wang@h.example"
