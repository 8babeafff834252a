from __future__ import annotations

import torch

from pipeline.model.network import Architecture, NeuralNetwork, build_model, count_parameters


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
