"""The engine against a plain PyTorch loop written as the notebook writes it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.data.batching import make_loader
from pipeline.data.splits import Split
from pipeline.model.inference import predict_proba
from pipeline.model.network import Architecture, build_model
from pipeline.training.loop import evaluate_loss_accuracy, fit, make_optimizer

CPU = torch.device("cpu")


def random_split(n=64, features=6, classes=3, seed=0) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return Split(x.numpy(), y.numpy())


def test_fit_matches_a_plain_pytorch_loop():
    split = random_split()
    arch = Architecture(6, (8, 4), 3)

    torch.manual_seed(1)
    reference = build_model(arch)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.3)
    x, y = torch.from_numpy(split.features), torch.from_numpy(split.labels)
    expected_losses = []
    for _ in range(3):
        for start in range(0, 64, 16):
            loss = F.cross_entropy(reference(x[start : start + 16]), y[start : start + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            expected_losses.append(loss.item())

    torch.manual_seed(1)
    model = build_model(arch)
    seen = []
    epochs = []
    result = fit(
        model,
        make_loader(split, 16),
        make_optimizer("sgd", model.parameters(), 0.3),
        CPU,
        epochs=3,
        on_batch=lambda step, loss: seen.append((step, loss)),
        on_epoch=lambda epoch, loss: epochs.append((epoch, loss)),
    )
    assert [s for s, _ in seen] == list(range(12))
    assert [loss for _, loss in seen] == expected_losses
    assert result.steps == 12
    assert epochs[0][1] == sum(expected_losses[:4]) / 4
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_adam_is_selectable():
    model = build_model(Architecture(2, (3,), 2))
    assert isinstance(make_optimizer("adam", model.parameters(), 0.01), torch.optim.Adam)
    assert isinstance(make_optimizer("sgd", model.parameters(), 0.01), torch.optim.SGD)


def test_predict_and_accuracy_agree_with_scikit_learn():
    from sklearn.metrics import accuracy_score, log_loss

    split = random_split(n=50, seed=3)
    torch.manual_seed(2)
    model = build_model(Architecture(6, (8,), 3))
    probabilities = predict_proba(model, make_loader(split, 7), CPU)
    assert probabilities.shape == (50, 3)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(50))
    loss, accuracy = evaluate_loss_accuracy(model, make_loader(split, 7), CPU)
    assert accuracy == accuracy_score(split.labels, probabilities.argmax(dim=1).numpy())
    assert abs(loss - log_loss(split.labels, probabilities.numpy(), labels=[0, 1, 2])) < 1e-5


@pytest.mark.parametrize(
    ("name", "reference"), [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)]
)
def test_weight_decay_is_torchs_own(name, reference):
    """fit with train.weight_decay equals a plain loop with torch.optim's weight_decay (classic
    coupled L2 for Adam too, not AdamW) and differs from no decay."""
    split = random_split()
    arch = Architecture(6, (8, 4), 3)

    def trained(make) -> list[torch.Tensor]:
        torch.manual_seed(1)
        model = build_model(arch)
        fit(model, make_loader(split, 16), make(model), CPU, epochs=3)
        return [p.detach().clone() for p in model.parameters()]

    ours = trained(lambda m: make_optimizer(name, m.parameters(), 0.05, weight_decay=0.1))
    theirs = trained(lambda m: reference(m.parameters(), lr=0.05, weight_decay=0.1))
    undecayed = trained(lambda m: reference(m.parameters(), lr=0.05))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(ours, undecayed, strict=True))


def test_stop_ends_fit_after_the_epoch_it_answers_true():
    split = random_split()
    model = build_model(Architecture(6, (8,), 3))
    asked = []
    result = fit(
        model,
        make_loader(split, 16),
        make_optimizer("sgd", model.parameters(), 0.1),
        CPU,
        epochs=10,
        stop=lambda epoch: asked.append(epoch) or epoch == 2,
    )
    assert asked == [0, 1, 2] and len(result.epoch_losses) == 3 and result.steps == 12
