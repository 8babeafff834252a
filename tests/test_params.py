from __future__ import annotations

import math

import pytest
import yaml
from helpers import ROOT

from pipeline.config.params import build, load_params
from pipeline.config.rules import split_sizes
from pipeline.config.schema import Params
from pipeline.process.errors import InputError


def load_text(tmp_path, text: str) -> Params:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_params(path)


def test_default_params_file_matches_design():
    params = load_params(ROOT / "params.yaml")
    assert (params.data.kind, params.data.n_features, params.data.n_classes) == (
        "classification",
        50,
        3,
    )
    assert params.model.hidden == (30, 20)
    # Every key of the file is a key of the dataclasses, and the file sets every key.
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    flat_file = {f"{s}.{k}" for s, v in raw.items() if isinstance(v, dict) for k in v}
    flat_file |= {k for k, v in raw.items() if not isinstance(v, dict)}
    assert flat_file == set(Params().flat())


def test_flat_uses_dotted_keys():
    flat = Params().flat()
    assert flat["train.lr"] == Params().train.lr
    assert flat["model.hidden"] == [30, 20]
    assert "seed" in flat


def test_unknown_key_suggests_the_closest(tmp_path):
    with pytest.raises(InputError, match=r"unknown key 'train.lrr'; did you mean 'train.lr'"):
        load_text(tmp_path, "train: {lrr: 0.1}\n")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("train: {lr: fast}", "train.lr is 'fast'; expected a number"),
        ("train: {epochs: true}", "train.epochs is True; expected a whole number"),
        ("train: {batch_size: 2.5}", "train.batch_size is 2.5; expected a whole number"),
        ("train: {shuffle: 1}", "train.shuffle is 1; expected true or false"),
        ("model: {hidden: 30}", "model.hidden is 30; expected a list"),
        ("train: 3", "train is 3; expected a mapping"),
    ],
)
def test_wrong_types_are_refused(tmp_path, text, fragment):
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        load_text(tmp_path, text + "\n")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("train: {lr: 0}", "train.lr is 0.0; expected a finite number above 0"),
        ("train: {lr: .nan}", "train.lr is nan"),
        ("train: {epochs: 0}", "train.epochs is 0; expected 1 or more"),
        ("data: {test_size: 1.0}", "data.test_size is 1.0"),
        ("data: {n_classes: 1}", "data.n_classes is 1; expected at least 2"),
        ("model: {hidden: []}", "model.hidden is []"),
        ("train: {device: tpu}", "train.device is 'tpu'; expected auto, cpu, cuda or cuda:N"),
        ("train: {optimizer: lbfgs}", "expected one of sgd, adam"),
        ("model: {dropout: 1.0}", "model.dropout is 1.0; expected a number from 0 up to"),
        ("model: {dropout: -0.1}", "model.dropout is -0.1; expected a number from 0 up to"),
        ("train: {weight_decay: -1}", "train.weight_decay is -1.0; expected a finite number"),
        ("train: {weight_decay: .inf}", "train.weight_decay is inf; expected a finite number"),
        ("train: {early_stopping: -3}", "train.early_stopping is -3; expected 0 or more"),
        ("train: {early_stopping: 2.5}", "train.early_stopping is 2.5; expected a whole number"),
        ("model: {dropout: high}", "model.dropout is 'high'; expected a number"),
    ],
)
def test_out_of_range_values_are_refused(tmp_path, text, fragment):
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_text(tmp_path, text + "\n")


def test_a_bare_exponent_is_a_number(tmp_path):
    assert load_text(tmp_path, "train: {lr: 1e-3}\n").train.lr == pytest.approx(1e-3)


def test_drop_last_that_leaves_no_batch_is_a_contradiction(tmp_path):
    text = "data: {kind: toy, val_size: 0}\ntrain: {batch_size: 8, drop_last: true}\n"
    with pytest.raises(InputError, match="train.batch_size is 8 with drop_last"):
        load_text(tmp_path, text)


def test_more_classes_than_samples_is_a_contradiction():
    raw = {"data": {"n_samples": 10, "n_classes": 5, "test_size": 0.2, "val_size": 0}}
    with pytest.raises(InputError, match="data.n_classes is 5"):
        from pipeline.config.rules import check_consistency

        check_consistency(build(raw))


def test_split_sizes_match_scikit_learn():
    from sklearn.model_selection import train_test_split

    data = build({"data": {"n_samples": 1003, "test_size": 0.23, "val_size": 0.17}}).data
    rest, test = train_test_split(list(range(1003)), test_size=0.23, random_state=0)
    train, val = train_test_split(rest, test_size=0.17, random_state=0)
    assert split_sizes(data) == {"train": len(train), "val": len(val), "test": len(test)}
    assert not math.isnan(data.test_size)


def test_params_are_frozen():
    params = Params()
    with pytest.raises(AttributeError):
        params.train.lr = 1.0  # type: ignore[misc]


def test_early_stopping_without_a_validation_split_is_refused_in_one_line(tmp_path, capsys):
    """Through the validate stage's main, as dvc repro runs it: exit 2, one line naming both."""
    from pipeline.stages import validate

    (tmp_path / "params.yaml").write_text("data: {val_size: 0}\ntrain: {early_stopping: 5}\n")
    argv = ["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "ok")]
    assert validate.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "train.early_stopping is 5 but data.val_size is 0.0" in lines[0]
    assert "expected data.val_size above 0" in lines[0]
    assert not (tmp_path / "ok").exists()


def test_the_new_keys_default_to_the_notebooks_training():
    params = load_params(ROOT / "params.yaml")
    assert params.model.dropout == 0.0
    assert (params.train.weight_decay, params.train.early_stopping) == (0.0, 0)
