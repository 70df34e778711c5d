"""Limits on what one user can ask of the server: the length of a query and the rows of one ingestion.

    query = checked_query(text)          # QueryTooLong past MAX_QUERY_CHARS
    for row in limited(rows, "a.csv"):   # TooManyRows past $MEDSEARCH_MAX_ROWS (default 200,000)
        ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from medsearch.records import MedSearchError

MAX_QUERY_CHARS = 2000
ROWS_ENV = "MEDSEARCH_MAX_ROWS"
DEFAULT_MAX_ROWS = 200_000
T = TypeVar("T")


class QueryTooLong(MedSearchError):
    """A query or question of `length` characters, over the `limit`."""

    def __init__(self, limit: int, length: int) -> None:
        self.limit, self.length = limit, length
        super().__init__(f"The query is {length:,} characters long; the limit is {limit:,}. Shorten it.")


class TooManyRows(MedSearchError):
    """More than `limit` rows (documents, records) in `name`: one file, or all files of one ingestion."""

    def __init__(self, name: str, limit: int) -> None:
        self.name, self.limit = name, limit
        super().__init__(f"{name}: more than {limit:,} rows, the limit of one ingestion "
                         f"(the server's {ROWS_ENV} setting).")


def checked_query(query: str, limit: int = MAX_QUERY_CHARS) -> str:
    """`query` as it is, or QueryTooLong when it has more than `limit` characters."""
    if len(query) > limit:
        raise QueryTooLong(limit, len(query))
    return query


def max_rows() -> int:
    """The most rows one ingestion may hold: $MEDSEARCH_MAX_ROWS, else DEFAULT_MAX_ROWS."""
    value = os.environ.get(ROWS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_ROWS
    try:
        limit = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise MedSearchError(f"{ROWS_ENV} must be a positive whole number (got '{value}').")
    return limit


def check_rows(name: str, count: int) -> None:
    """TooManyRows when `count` rows of `name` are more than `max_rows()`."""
    limit = max_rows()
    if count > limit:
        raise TooManyRows(name, limit)


def limited(rows: Iterable[T], name: str) -> Iterator[T]:
    """The rows of `name` as they are read, stopping with TooManyRows at the first one past `max_rows()`."""
    limit = max_rows()
    for count, row in enumerate(rows, start=1):
        if count > limit:
            raise TooManyRows(name, limit)
        yield row
