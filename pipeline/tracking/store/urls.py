"""Store URLs as users write them: shown without their password, and the SQLite file they name.

One home for both: the MLflow tracking URI, the Optuna storage and the team server's backend
store are all such URLs, and each used to parse them its own way.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")


def shown(url: str) -> str:
    """The URL with its password replaced by *** (SQLAlchemy's own rendering), for messages."""
    if "@" not in url:
        return url  # no credentials, and no need to import SQLAlchemy (0.7 s) in a stage
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"


def sqlite_path(url: str) -> Path | None:
    """The database file of an sqlite:///<path> URL (query string dropped, %-escapes decoded);
    None for any other URL and for SQLite's in-memory database."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.lower() not in SQLITE_SCHEMES:
        return None
    path = urllib.parse.unquote(rest.split("?")[0])
    return Path(path) if path and path != ":memory:" else None
