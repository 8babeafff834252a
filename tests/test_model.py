from __future__ import annotations

import json

import pytest
import torch

from pipeline.model import checkpoint
from pipeline.model.network import Architecture, NeuralNetwork, build_model, count_parameters
from pipeline.process.errors import InputError


def test_the_notebooks_mlp_has_2213_parameters():
    assert count_parameters(build_model(Architecture(50, (30, 20), 3))) == 2213


def test_state_dict_keys_match_the_notebooks_sequential():
    keys = list(NeuralNetwork(50, 3).state_dict())
    assert keys == [f"layers.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]


def test_forward_is_linear_relu_layers():
    torch.manual_seed(0)
    model = build_model(Architecture(4, (5,), 2))
    x = torch.randn(3, 4)
    first, last = model.layers[0], model.layers[2]
    expected = torch.relu(x @ first.weight.T + first.bias) @ last.weight.T + last.bias
    assert torch.allclose(model(x), expected)


def test_architecture_round_trips_through_a_dict():
    arch = Architecture(50, (30, 20), 3)
    assert Architecture.from_dict(arch.to_dict()) == arch


def test_dropout_zero_keeps_the_notebooks_module_and_numbers():
    torch.manual_seed(0)
    plain = NeuralNetwork(50, 3)
    torch.manual_seed(0)
    zero = build_model(Architecture(50, (30, 20), 3, dropout=0.0))
    assert not any(isinstance(m, torch.nn.Dropout) for m in zero.modules())
    assert list(zero.state_dict()) == list(plain.state_dict())
    x = torch.randn(4, 50)
    assert torch.equal(zero.train()(x), plain.train()(x))  # no randomness even in train mode


def test_dropout_is_random_in_train_mode_and_deterministic_in_eval_mode():
    torch.manual_seed(0)
    model = build_model(Architecture(6, (64, 32), 3, dropout=0.5))
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 2  # one per ReLU
    x = torch.randn(8, 6)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    first = model(x)
    assert torch.equal(first, model(x))
    # In eval mode Dropout is the identity: the same weights without it give the same logits.
    plain = build_model(Architecture(6, (64, 32), 3))
    plain.load_state_dict(
        {
            k.replace("layers.3.", "layers.2.").replace("layers.6.", "layers.4."): v
            for k, v in model.state_dict().items()
        }
    )
    assert torch.allclose(plain.eval()(x), first)


def test_architecture_carries_dropout_and_old_files_without_it_load():
    arch = Architecture(50, (30, 20), 3, dropout=0.25)
    assert arch.to_dict()["dropout"] == 0.25
    assert Architecture.from_dict(arch.to_dict()) == arch
    old = {k: v for k, v in Architecture(50, (30, 20), 3).to_dict().items() if k != "dropout"}
    assert Architecture.from_dict(old).dropout == 0.0


def test_a_saved_model_with_dropout_loads_in_eval_mode(tmp_path):
    arch = Architecture(6, (16,), 3, dropout=0.5)
    checkpoint.save(build_model(arch), arch, tmp_path / "model.pth")
    model, loaded = checkpoint.load(tmp_path / "model.pth")
    assert loaded.dropout == 0.5 and not model.training
    x = torch.randn(5, 6)
    assert torch.equal(model(x), model(x))
    raw = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**raw, "dropout": 1.5}))
    with pytest.raises(InputError, match="dropout holds 1.5"):
        checkpoint.load(tmp_path / "model.pth")
