"""train.seed apart from seed: the training seed changes initialisation and shuffling, never the
splits; null is `seed` exactly; the configuration digest ignores it. Against plain PyTorch, the
real train stage's files and a real MLflow store read back."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from helpers import ROOT
from tune_helpers import make_workspace

from pipeline import tracking
from pipeline.config.params import load_params, with_values
from pipeline.config.schema import Params, configuration_digest
from pipeline.data.synthetic import generate
from pipeline.model.network import build_model
from pipeline.process.errors import InputError
from pipeline.runtime.distributed import Runtime
from pipeline.search.trials import load_splits
from pipeline.stages import train
from pipeline.training.setup import architecture, prepare


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("seeds") / "w", epochs=2)


def seeded(params: Params, train_seed) -> Params:
    return with_values(params, {"train.seed": train_seed}, source="test")


def test_params_yaml_defaults_to_null_and_refuses_a_bad_seed():
    assert load_params(ROOT / "params.yaml").train.seed is None
    base = Params()
    assert base.train_seed == base.seed and seeded(base, 5).train_seed == 5
    for bad, expected in ((-1, "0 or more"), (1.5, "a whole number or null"), (True, "null")):
        with pytest.raises(InputError, match=f"train.seed is {bad!r}; expected .*{expected}"):
            seeded(base, bad)


def test_the_training_seed_sets_initialisation_and_shuffles_but_not_the_splits(workspace):
    params = load_params(workspace / "params.yaml")
    splits = generate(params.data, params.seed)
    for other in (seeded(params, 99), seeded(params, 5)):
        again = generate(other.data, other.seed)  # what the generate stage is given
        for name, split in splits.items():
            assert (again[name].features == split.features).all(), name
    train_split, val_split = load_splits(workspace / "data")
    runtime = Runtime(torch.device("cpu"))
    for train_seed in (None, 5, 99):
        fitting = prepare(
            params=seeded(params, train_seed),
            train_split=train_split,
            val_split=val_split,
            runtime=runtime,
        )
        # Reference: the notebook's order, torch.manual_seed(seed) then the model.
        torch.manual_seed(params.seed if train_seed is None else train_seed)
        reference = build_model(architecture(params, train_split)).state_dict()
        for key, value in fitting.model.state_dict().items():
            assert torch.equal(value, reference[key]), (train_seed, key)
    first = [batch[1].tolist() for batch in _first_epoch(params, 5, train_split, val_split)]
    second = [batch[1].tolist() for batch in _first_epoch(params, 99, train_split, val_split)]
    assert first != second  # another training seed, other shuffles of the same rows


def _first_epoch(params, train_seed, train_split, val_split):
    fitting = prepare(
        params=seeded(params, train_seed),
        train_split=train_split,
        val_split=val_split,
        runtime=Runtime(torch.device("cpu")),
    )
    return list(fitting.loader)


def _train(params: Params, out) -> tuple[dict, dict]:
    out.mkdir()
    summary = train.run(
        params=params,
        data_dir=out.parent / "data",
        checkpoint_path=out / "checkpoint.pth",
        metrics_path=out / "train.json",
        plots_dir=out,
    )
    return torch.load(out / "checkpoint.pth", weights_only=True), summary


def test_null_and_the_data_seed_train_bit_identical_models(workspace, monkeypatch):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    params = load_params(workspace / "params.yaml")
    null, null_summary = _train(params, workspace / "null")
    same, same_summary = _train(seeded(params, params.seed), workspace / "same")
    other, other_summary = _train(seeded(params, params.seed + 1), workspace / "other")
    assert null.keys() == same.keys() == other.keys()
    assert all(torch.equal(null[key], same[key]) for key in null)  # bit-identical weights
    assert null_summary == same_summary
    assert not all(torch.equal(null[key], other[key]) for key in null)
    assert other_summary["final_loss"] != null_summary["final_loss"]


def test_the_digest_is_stable_and_ignores_the_training_seed(workspace, tmp_path):
    params = load_params(workspace / "params.yaml")
    digest = configuration_digest(params.flat())
    assert len(digest) == 12
    assert {configuration_digest(seeded(params, s).flat()) for s in (None, 1, 7, 99)} == {digest}
    changed = with_values(params, {"train.lr": 0.1001}, source="test")
    assert configuration_digest(changed.flat()) != digest
    assert configuration_digest(with_values(params, {"seed": 8}, source="t").flat()) != digest
    # However the YAML was written (0 or 0.0), and in another process (no hash randomness).
    written = (
        (workspace / "params.yaml").read_text().replace("weight_decay: 0.0", "weight_decay: 0")
    )
    assert "weight_decay: 0\n" in written
    (tmp_path / "params.yaml").write_text(written)
    code = (
        "from pipeline.config.params import load_params;"
        "from pipeline.config.schema import configuration_digest as d;"
        f"print(d(load_params({str(tmp_path / 'params.yaml')!r}).flat()))"
    )
    printed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert printed.stdout.strip() == digest


def test_every_run_carries_its_configuration_tag(sqlite_store):
    import mlflow

    params = seeded(Params(), 3)
    tracker = tracking.start_run(params.flat(), {})
    with tracking.run_status(tracker):
        pass
    tags = mlflow.MlflowClient(sqlite_store).get_run(tracker.run_id).data.tags
    assert tags["config.digest"] == configuration_digest(Params().flat())
