"""A split's rows and what they mean (feature names, classes, source), and its .npz file."""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.model.encoding import TableEncoding
from pipeline.process.errors import InputError
from pipeline.process.files import atomic_path


@dataclass(frozen=True)
class Split:
    features: np.ndarray  # float32, shape (n, n_features)
    labels: np.ndarray  # int64, shape (n,): indices into `classes`
    # What the columns and labels mean, carried into models/model.json; for generated sets (and
    # files written before they were kept) x0, x1, ... and 0, 1, ...
    feature_names: tuple[str, ...] = ()
    classes: tuple[int | str, ...] = ()
    source: str = ""  # where the rows come from: the table's path, or the generator
    source_sha256: str = ""  # the table file's digest ("" for generated sets)
    # data.standardize, carried to train with the rows: a model trained on them standardizes.
    standardize: bool = False
    # A table's: how its raw columns became these features (fitted on the training split), and
    # how many of its rows had no target (left out).
    encoding: TableEncoding | None = None
    rows_without_target: int = 0

    def __post_init__(self):
        if not self.feature_names:
            names = tuple(f"x{i}" for i in range(self.features.shape[-1]))
            object.__setattr__(self, "feature_names", names)
        if not self.classes:
            count = int(self.labels.max()) + 1 if len(self.labels) else 0
            object.__setattr__(self, "classes", tuple(range(count)))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def data_name(self) -> str:
        """The rows in a word: "wine" (data/raw/wine.csv), "toy", "make_classification"."""
        return Path(self.source).stem if "/" in self.source else self.source.rsplit(".")[-1]

    def as_dataset(self, split_name: str, context: str) -> dict:
        """This split as plain data for tracker.log_datasets: "wine/train" from wine.csv."""
        origin = self.data_name
        # The rows themselves: the .npz file's bytes also hold a zip timestamp.
        digest = hashlib.sha256(self.features.tobytes())
        digest.update(self.labels.tobytes())
        return {
            "name": f"{origin}/{split_name}",
            "digest": digest.hexdigest()[:16],
            "source": self.source,
            "rows": len(self),
            # A table's raw columns with their types; generated sets: the feature names.
            "features": self.encoding.schema() if self.encoding else list(self.feature_names),
            "context": context,
        }


def save_split(split: Split, path: Path) -> None:
    meaning = {
        "feature_names": np.array(split.feature_names, dtype=str),
        "classes": np.array(split.classes) if split.classes else np.zeros(0, np.int64),
        "source": np.array(split.source),
        "source_sha256": np.array(split.source_sha256),
        "standardize": np.array(split.standardize),
        "encoding": np.array(json.dumps(split.encoding.to_dict()) if split.encoding else ""),
        "rows_without_target": np.array(split.rows_without_target, dtype=np.int64),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, features=split.features, labels=split.labels, **meaning)


ZIP_MAGIC = b"PK\x03\x04"
EXPECTED_SPLIT = "an .npz written by `python -m pipeline.stages.generate` (features, labels)"


def load_split(path: Path | str) -> Split:
    """Read a split written by save_split; anything else is a one-line InputError."""
    path = Path(path)
    arrays = _read_arrays(path)
    features, labels = arrays.pop("features"), arrays.pop("labels")
    problem = _split_problem(features, labels) or _meaning_problem(features, labels, arrays)
    if problem:
        raise InputError(f"{path}: {problem}; expected {EXPECTED_SPLIT}")
    return Split(
        features,
        labels,
        feature_names=tuple(str(name) for name in arrays.get("feature_names", ())),
        classes=tuple(c.item() for c in arrays.get("classes", ())),
        source=str(arrays.get("source", "")),
        source_sha256=str(arrays.get("source_sha256", "")),
        standardize=bool(arrays.get("standardize", False)),
        encoding=_encoding(path, str(arrays.get("encoding", ""))),
        rows_without_target=int(arrays.get("rows_without_target", 0)),
    )


MEANING = (
    "feature_names",
    "classes",
    "source",
    "source_sha256",
    "standardize",
    "encoding",
    "rows_without_target",
)


def _encoding(path: Path, text: str) -> TableEncoding | None:
    if not text:
        return None
    try:
        return TableEncoding.from_dict(json.loads(text))
    except ValueError as exc:  # json's errors are ValueErrors too
        raise InputError(f"{path}: {exc}; expected {EXPECTED_SPLIT}") from None


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    def refuse(problem: str) -> InputError:
        return InputError(f"{path}: {problem}; expected {EXPECTED_SPLIT}")

    try:
        with open(path, "rb") as handle:
            # np.load would try anything that is neither .npz nor .npy as a pickle.
            if handle.read(4) != ZIP_MAGIC:
                raise refuse("not an .npz archive")
        with np.load(path, allow_pickle=False) as archive:
            if not {"features", "labels"} <= set(archive.files):
                raise refuse(f"holds arrays {sorted(archive.files)}")
            return {
                name: archive[name]
                for name in ("features", "labels", *MEANING)
                if name in archive.files
            }
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; run `dvc repro generate` first") from None
    except ValueError:  # object arrays, which only unpickling could read
        raise refuse("refused, it holds pickled objects") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error):
        raise refuse("unreadable or truncated") from None


def _split_problem(features: np.ndarray, labels: np.ndarray) -> str | None:
    if features.ndim != 2 or labels.ndim != 1 or len(features) != len(labels):
        return f"features {features.shape} and labels {labels.shape} do not match"
    if features.dtype != np.float32 or labels.dtype != np.int64:
        return f"dtypes {features.dtype}/{labels.dtype} instead of float32/int64"
    if len(labels) and labels.min() < 0:
        return f"labels include {labels.min()}; class indices start at 0"
    if not np.isfinite(features).all():
        return "features include NaN or infinity"
    return None


def _meaning_problem(features, labels, arrays: dict[str, np.ndarray]) -> str | None:
    names, classes = arrays.get("feature_names"), arrays.get("classes")
    if names is not None and (names.dtype.kind != "U" or names.shape != features.shape[1:]):
        return (
            f"feature_names {names.dtype}{names.shape} do not name the {features.shape[1]} columns"
        )
    if classes is not None and (classes.dtype.kind not in "iU" or classes.ndim != 1):
        return f"classes of dtype {classes.dtype}; expected whole numbers or strings"
    flag = arrays.get("standardize")
    if flag is not None and (flag.dtype != np.bool_ or flag.ndim):
        return f"standardize of dtype {flag.dtype}{flag.shape}; expected one true or false"
    if classes is not None and len(labels) and labels.max() >= len(classes):
        return f"labels include {labels.max()}, beyond the {len(classes)} classes"
    return None


def check_width(split: Split, path: Path, expected: int, expectation: str) -> None:
    """A split's rows must be as wide as the training split (or the model) says; `expectation`
    ends the one-line error ("expected 4 as in data/train.npz")."""
    if len(split) and split.features.shape[1] != expected:
        raise InputError(f"{path}: {split.features.shape[1]} features; {expectation}")
