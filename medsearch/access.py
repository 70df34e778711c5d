"""Who may do what: roles of signed-in people, from a small server-side file.

The app signs people in with OpenID Connect (Streamlit's `st.login`); this module only decides, from
the e-mail address and groups the provider vouches for, which role a person has. The file is TOML,
at `$MEDSEARCH_ROLES`, else `<MEDSEARCH_HOME>/roles.toml`:

    default = "viewer"                 # anyone else the provider signs in ("none": let nobody else in)

    [people]                           # e-mail address → role
    "chen.li@hospital.example" = "admin"

    [groups]                           # a group in the provider's `groups` claim → role
    "medsearch-annotators" = "annotator"

A person listed several ways gets the highest of their roles. Without the file everyone signed in
is a viewer. Without sign-in configured, the app serves one local user with every permission.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from medsearch.home import medsearch_home
from medsearch.records import MedSearchError


class Role(IntEnum):
    """Each role may do everything the roles below it may."""

    VIEWER = 1      # search, compare, ask
    ANNOTATOR = 2   # also label, mine and import triplets, and see their own labels
    ADMIN = 3       # also upload, rebuild, delete, train and choose generators


PERMISSIONS: dict[str, Role] = {
    "search": Role.VIEWER, "ask": Role.VIEWER, "label": Role.ANNOTATOR,
    "upload": Role.ADMIN, "rebuild": Role.ADMIN, "delete": Role.ADMIN, "train": Role.ADMIN,
    "configure": Role.ADMIN,
}


@dataclass(frozen=True)
class User:
    """The person behind a session: `name` is what every write records (their e-mail when signed in)."""

    name: str
    role: Role

    def may(self, action: str) -> bool:
        """Whether this user may do `action` (a key of PERMISSIONS)."""
        return self.role >= PERMISSIONS[action]


LOCAL = User("local", Role.ADMIN)


@dataclass(frozen=True)
class Roles:
    """The roles file: a default role (None lets nobody unlisted in) and roles by e-mail and by group."""

    default: Role | None = Role.VIEWER
    people: tuple[tuple[str, Role], ...] = ()
    groups: tuple[tuple[str, Role], ...] = ()

    def role_of(self, email: str, groups: list[str] | tuple[str, ...] = ()) -> Role | None:
        """The highest role `email` or any of `groups` has; the default when neither is listed."""
        found = [role for who, role in self.people if who == email.strip().lower()]
        found += [role for group, role in self.groups if group in groups]
        return max(found) if found else self.default

    def user(self, claims: dict[str, Any]) -> User | None:
        """The user an identity provider's claims describe, or None when they may not come in (no e-mail
        address, or one the provider says it has not verified)."""
        if claims.get("email_verified") is False:
            return None
        email = str(claims.get("email") or "").strip().lower()
        groups = claims.get("groups") or []
        role = self.role_of(email, [str(g) for g in groups] if isinstance(groups, list) else [str(groups)])
        return User(email, role) if email and role else None


def _role(value: object, where: str) -> Role | None:
    text = str(value).strip().upper()
    if text == "NONE" and where == "default":
        return None
    if text not in Role.__members__:
        raise MedSearchError(f"Roles file: '{value}' for {where} is not a role (viewer, annotator, admin).")
    return Role[text]


def _member_role(value: object, who: str) -> Role:
    """A person's or group's role ("none" is only for the default)."""
    role = _role(value, who)
    assert role is not None  # only the default may be "none"
    return role


def roles_path(home: str | Path | None = None) -> Path:
    """Where the roles file is: `$MEDSEARCH_ROLES`, else `<home>/roles.toml`."""
    return Path(os.environ.get("MEDSEARCH_ROLES") or medsearch_home(home) / "roles.toml")


def load_roles(home: str | Path | None = None) -> Roles:
    """The roles file, or everyone a viewer when there is none; a malformed file is a MedSearchError."""
    path = roles_path(home)
    if not path.is_file():
        return Roles()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MedSearchError(f"Roles file {path} is not valid TOML: {exc}") from None
    people = tuple((str(k).strip().lower(), _member_role(v, str(k))) for k, v in raw.get("people", {}).items())
    groups = tuple((str(k), _member_role(v, str(k))) for k, v in raw.get("groups", {}).items())
    return Roles(_role(raw.get("default", "viewer"), "default"), people, groups)
