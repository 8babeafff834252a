from __future__ import annotations

import pickle

import pytest
import torch

from pipeline.model import checkpoint
from pipeline.model.network import Architecture, build_model
from pipeline.process.errors import InputError

SMALL = Architecture(4, (5, 3), 2)


def saved(tmp_path, arch=SMALL):
    torch.manual_seed(0)
    model = build_model(arch)
    path = tmp_path / "model.pth"
    checkpoint.save(model, arch, path)
    return model, path


def test_round_trip_into_a_plain_mlp(tmp_path):
    model, path = saved(tmp_path)
    loaded, arch = checkpoint.load(path)
    assert arch == Architecture(4, (5, 3), 2)
    x = torch.randn(3, 4)
    assert torch.equal(loaded(x), model(x))
    # The file is a plain state_dict, as the notebook saves it.
    state = torch.load(path, weights_only=True)
    assert set(state) == set(model.state_dict())


def test_truncated_state_dict_is_refused(tmp_path):
    _, path = saved(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="model.pth: unreadable or truncated"):
        checkpoint.load(path)


def test_other_architecture_lists_keys_and_shapes(tmp_path):
    _, path = saved(tmp_path)
    checkpoint.architecture_path(path).write_text(
        '{"num_inputs": 4, "hidden": [6], "num_outputs": 2}'
    )
    with pytest.raises(InputError) as caught:
        checkpoint.load(path)
    message = str(caught.value)
    assert "unexpected ['layers.4.bias', 'layers.4.weight']" in message
    assert "layers.0.weight (5, 4) vs (6, 4)" in message


class RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, path = saved(tmp_path)
    with open(path, "wb") as handle:
        torch.save({"layers.0.weight": RunsCode()}, handle, pickle_module=pickle)
    with pytest.raises(InputError, match="refused"):
        checkpoint.load(path)
    assert not (tmp_path / "pwned").exists()
