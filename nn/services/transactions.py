"""SQLite transactions shared by the run store and the drawings store: each store opens its own
connection (its path, pragmas and error naming), and these run one transaction on it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

Connect = Callable[[], AbstractContextManager[sqlite3.Connection]]


@contextlib.contextmanager
def read_transaction(connect: Connect) -> Iterator[sqlite3.Connection]:
    """A read transaction: every query inside sees the same snapshot (WAL)."""
    with connect() as conn:
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def write_transaction(connect: Connect) -> Iterator[sqlite3.Connection]:
    """One write transaction: takes the write lock up front, commits or rolls back."""
    with connect() as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
