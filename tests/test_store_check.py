"""store_check against what it mirrors: MLflow's store registry, SQLAlchemy's drivers, real stores.

The one-line errors themselves are rows of tests/test_bad_inputs.py (BAD_STORES), run through
the real train stage.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import mlflow
import pytest
from helpers import ROOT
from mlflow.tracking._tracking_service.utils import _tracking_store_registry
from sqlalchemy.dialects import registry as sqlalchemy_dialects

from pipeline.process.errors import InputError
from pipeline.tracking.store.check import (
    DATABASES,
    DRIVERS,
    MLFLOW_BARE_NAMES,
    MLFLOW_SCHEMES,
    check_store,
)


def test_the_known_schemes_are_those_of_mlflows_store_registry():
    registered = set(_tracking_store_registry._registry)
    # "" is MLflow's plain path (its deprecated file store), refused here as "not a URI".
    assert registered - {""} == MLFLOW_SCHEMES
    assert registered >= MLFLOW_BARE_NAMES
    assert registered >= DATABASES


@pytest.mark.parametrize(("dialect", "driver"), sorted(DRIVERS))
def test_each_driver_imports_the_module_named_for_it(dialect, driver):
    """SQLAlchemy's dialect for the URI is the one named, and imports the module we look for."""
    dialect_class = sqlalchemy_dialects.load(f"{dialect}.{driver}" if driver else dialect)
    module = DRIVERS[(dialect, driver)][0]
    if not driver:  # the default: the same as naming SQLAlchemy's default driver
        assert DRIVERS[(dialect, dialect_class.driver)][0] == module
    source = inspect.getsource(dialect_class.import_dbapi)
    assert re.search(rf"\b(import|from) {re.escape(module)}\b|__import__\(\"{module}\"", source)


def test_stores_mlflow_opens_pass_and_stay_untouched(tmp_path):
    existing = tmp_path / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{existing}").search_experiments()
    before = existing.read_bytes()
    (tmp_path / "empty.db").touch()  # SQLite takes an empty file for a new database
    for uri in (
        f"sqlite:///{existing}",
        f"sqlite:///{tmp_path / 'empty.db'}",
        f"sqlite:///{tmp_path / 'new' / 'deeper' / 'mlflow.db'}",
        "http://127.0.0.1:5000",
        "https://mlflow.example.com",
        "postgresql+psycopg2://user:password@127.0.0.1:5432/mlflow",
        "databricks",
        "databricks://profile",
        f"file://{tmp_path / 'mlruns'}",
    ):
        check_store(uri)
    assert existing.read_bytes() == before
    assert not (tmp_path / "new").exists()
    assert len(mlflow.MlflowClient(f"sqlite:///{existing}").search_experiments()) == 1


def test_errors_name_where_the_uri_came_from_and_hide_its_password():
    with pytest.raises(InputError) as refused:
        check_store("postgres://alice:s3cret@db:5432/mlflow", named="--tracking-uri")
    message = str(refused.value)
    assert message.startswith("--tracking-uri=postgres://alice:***@db:5432/mlflow: unknown")
    assert "s3cret" not in message and "\n" not in message


def test_checking_a_store_imports_neither_mlflow_nor_sqlalchemy(tmp_path):
    """The training process calls it before MLflow is imported anywhere."""
    code = (
        "import sys\n"
        "from pipeline.tracking.store.check import check_store\n"
        f"check_store('sqlite:///{tmp_path / 'mlflow.db'}')\n"
        "check_store('postgresql+psycopg2://u:p@127.0.0.1/db')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'sqlalchemy')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout == "[]\n"
