"""Is the tracking store's URI one MLflow can open? One line saying why not, before any training.

Standard library only, no MLflow: it runs before MLflow is imported (and so stays cheap), and
it decides from the URI and the SQLite file alone, never by letting MLflow try (a traceback,
and a damaged or foreign file half-migrated by MLflow's schema upgrade).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import sqlite3
import urllib.parse
from pathlib import Path

from pipeline.process.errors import InputError
from pipeline.tracking.store.urls import shown as hidden
from pipeline.tracking.store.urls import sqlite_path

# The schemes of MLflow's tracking store registry (mlflow.tracking._tracking_service.utils),
# less "" (a plain path, which MLflow takes for its deprecated file store); tests compare them.
MLFLOW_SCHEMES = frozenset(
    {"databricks", "databricks-uc", "file", "http", "https", "mssql", "mysql", "postgresql"}
    | {"sqlite", "uc"}
)
# Names MLflow takes as a whole URI, without "://".
MLFLOW_BARE_NAMES = frozenset({"databricks", "databricks-uc", "uc"})
PLUGIN_GROUP = "mlflow.tracking_store"
DATABASES = frozenset({"postgresql", "mysql", "mssql", "sqlite"})
# The module each SQLAlchemy driver imports, and the package that brings it; "" is the dialect's
# default driver (SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, not psycopg2).
DRIVERS = {
    ("postgresql", ""): ("psycopg", "psycopg[binary]"),
    ("postgresql", "psycopg"): ("psycopg", "psycopg[binary]"),
    ("postgresql", "psycopg2"): ("psycopg2", "psycopg2-binary"),
    ("postgresql", "pg8000"): ("pg8000", "pg8000"),
    ("mysql", ""): ("MySQLdb", "mysqlclient"),
    ("mysql", "mysqldb"): ("MySQLdb", "mysqlclient"),
    ("mysql", "pymysql"): ("pymysql", "PyMySQL"),
    ("mysql", "mysqlconnector"): ("mysql.connector", "mysql-connector-python"),
    ("mssql", ""): ("pyodbc", "pyodbc"),
    ("mssql", "pyodbc"): ("pyodbc", "pyodbc"),
    ("mssql", "pymssql"): ("pymssql", "pymssql"),
    ("sqlite", ""): ("sqlite3", "Python with sqlite3"),
    ("sqlite", "pysqlite"): ("sqlite3", "Python with sqlite3"),
}
TEAM_EXTRA = "pip install -e '.[team]' (the project's team extra, psycopg2-binary)"
SQLITE_HEADER = b"SQLite format 3\x00"
EXAMPLES = "sqlite:///<path>.db, postgresql+psycopg2://user:pass@host:port/db or http://host:port"


def check_store(tracking_uri: str, *, named: str = "MLFLOW_TRACKING_URI") -> None:
    """Raise InputError unless MLflow can open `tracking_uri`; `named`: where the URI came from."""
    shown = _Shown(named, tracking_uri)
    if not tracking_uri.strip():
        raise InputError(f"{named} is empty; expected {EXAMPLES}, or unset it for mlflow.db")
    if tracking_uri.strip() != tracking_uri:
        raise InputError(f"{named}={tracking_uri!r}: spaces around the URI; expected it alone")
    if tracking_uri in MLFLOW_BARE_NAMES:
        return
    if "://" not in tracking_uri and ":/" not in tracking_uri:
        raise InputError(f"{shown}: not a URI; expected {EXAMPLES}{_path_hint(tracking_uri)}")
    try:
        parts = urllib.parse.urlsplit(tracking_uri)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        raise InputError(f"{shown}: not a valid URI ({exc}); expected {EXAMPLES}") from None
    dialect, _, driver = parts.scheme.lower().partition("+")
    _check_scheme(shown, dialect, parts.scheme)
    if dialect in ("http", "https") or (dialect in DATABASES and dialect != "sqlite"):
        _check_address(shown, parts, needs_host=dialect in ("http", "https"))
    if dialect in DATABASES:
        _check_driver(shown, dialect, driver)
    if dialect == "sqlite":
        _check_sqlite_file(_sqlite_path(shown, tracking_uri, parts))


class _Shown:
    """`NAME=uri` as error messages show it, password hidden. Rendered only when a message is
    made: hiding the password imports SQLAlchemy (0.7 s), which a good store never needs here."""

    def __init__(self, named: str, uri: str):
        self.named, self.uri = named, uri

    def __str__(self) -> str:  # f-strings call it: "{shown}: ..."
        return f"{self.named}={hidden(self.uri)}"


def _check_scheme(shown: str, dialect: str, scheme: str) -> None:
    if dialect in MLFLOW_SCHEMES or dialect in _plugin_schemes():
        return
    close = difflib.get_close_matches(dialect, sorted(MLFLOW_SCHEMES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(sorted(MLFLOW_SCHEMES))
    raise InputError(f"{shown}: unknown scheme {scheme!r}{hint}; expected one of {known}")


def _plugin_schemes() -> set[str]:
    """Schemes that installed MLflow plugins register (rare: looked up only when needed)."""
    from importlib.metadata import entry_points

    return {entry.name for entry in entry_points(group=PLUGIN_GROUP)}


def _check_address(shown: str, parts: urllib.parse.SplitResult, needs_host: bool) -> None:
    scheme = parts.scheme
    if needs_host and not parts.hostname:
        raise InputError(f"{shown}: no host; expected {scheme}://host:port")
    try:
        port = parts.port
    except ValueError:
        port = parts.netloc.rpartition(":")[2]
    if port is not None and not (isinstance(port, int) and port > 0):
        raise InputError(
            f"{shown}: port '{port}' is not a number from 1 to 65535; expected {scheme}://host:port"
        )


def _check_driver(shown: str, dialect: str, driver: str) -> None:
    known = sorted(name for base, name in DRIVERS if base == dialect and name)
    if (dialect, driver) not in DRIVERS:
        raise InputError(
            f"{shown}: unknown {dialect} driver {driver!r}; expected one of {', '.join(known)}"
        )
    module, package = DRIVERS[(dialect, driver)]
    if _installed(module):
        return
    if (dialect, driver) == ("postgresql", "psycopg2"):
        install = TEAM_EXTRA
    elif dialect == "postgresql":
        install = f"pip install '{package}', or write postgresql+psycopg2:// and {TEAM_EXTRA}"
    else:
        install = f"pip install '{package}'"
    wanted = f"{dialect}+{driver}" if driver else f"{dialect} (SQLAlchemy's default)"
    raise InputError(f"{shown}: the {wanted} driver, {module}, is not installed; {install}")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package of a dotted name is missing
        return False


def _sqlite_path(shown: str, tracking_uri: str, parts: urllib.parse.SplitResult) -> Path:
    if parts.netloc or not tracking_uri.lower().split("?")[0].startswith(f"{parts.scheme}:///"):
        raise InputError(
            f"{shown}: expected sqlite:///<path> (three slashes, then the path: "
            "sqlite:////abs/mlflow.db for an absolute one)"
        )
    path = sqlite_path(tracking_uri)
    if path is None:
        raise InputError(
            f"{shown}: no database file (an in-memory store vanishes with the process); "
            "expected sqlite:///<path>.db"
        )
    return path


def _check_sqlite_file(path: Path) -> None:
    """A new file, an empty one (SQLite's own new database) or an MLflow store in one piece."""
    for ancestor in reversed(path.absolute().parents):
        if ancestor.exists() and not ancestor.is_dir():
            raise InputError(f"{path}: {ancestor} is not a directory; expected a directory there")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; expected an SQLite file such as {path}.db")
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as handle:
        header = handle.read(100)
    if not header.startswith(SQLITE_HEADER):
        raise InputError(
            f"{path}: not an SQLite database (it starts with {header[:16]!r}); "
            "expected MLflow's SQLite store, or no file there (a new store is created)"
        )
    _check_sqlite_contents(path, header)


def _check_sqlite_contents(path: Path, header: bytes) -> None:
    damaged = (
        f"{path}: a damaged SQLite database ({{}}); expected an intact MLflow store: "
        "restore it from a backup, or move it away to start a new one"
    )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid when the header's two change counters agree (SQLite's file format).
    if header[24:28] == header[92:96] and path.stat().st_size < pages * page_size:
        raise InputError(damaged.format(f"{path.stat().st_size} bytes of {pages * page_size}"))
    read_only = f"{path.absolute().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(read_only, uri=True, timeout=30)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise InputError(damaged.format(exc)) from None
    if tables and not {"experiments", "runs"} <= tables:
        raise InputError(
            f"{path}: an SQLite database but not an MLflow store (no experiments and runs "
            "tables); expected MLflow's store, or a path where a new one is created"
        )


def _path_hint(value: str) -> str:
    if value.endswith(".db"):
        return f" (for this file: sqlite:///{Path(value).absolute()})"
    return ""
