"""A model on disk: a plain state_dict (.pth) beside the architecture that rebuilds it (.json)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from pipeline.model.architecture import Architecture
from pipeline.model.encoding import TableEncoding
from pipeline.model.network import NeuralNetwork, build_model
from pipeline.process.errors import InputError
from pipeline.process.files import atomic_path, write_json


def architecture_path(state_path: Path | str) -> Path:
    return Path(state_path).with_suffix(".json")


def save(model: torch.nn.Module, arch: Architecture, state_path: Path | str) -> None:
    """Write the state_dict on the CPU, so a model trained on a GPU loads anywhere."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    with atomic_path(state_path) as tmp:
        torch.save(state, tmp)
    write_json(architecture_path(state_path), arch.to_dict())


def load(state_path: Path | str) -> tuple[NeuralNetwork, Architecture]:
    """Rebuild the MLP from model.json and load the state_dict, on the CPU, without pickles."""
    state_path = Path(state_path)
    arch = _read_architecture(architecture_path(state_path))
    state = _read_state(state_path)
    model = build_model(arch)
    _check_keys_and_shapes(model, state, state_path, arch)
    model.load_state_dict(state)
    model.eval()
    return model, arch


def _read_architecture(path: Path) -> Architecture:
    expected = (
        "JSON with num_inputs, hidden (a list) and num_outputs, whole numbers from 1 (and "
        "optionally features, classes: lists of one name per input and output; dropout: 0 <= p < 1)"
    )
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; expected the model's architecture") from None
    except (ValueError, OSError):
        raise InputError(f"{path}: not JSON; expected {expected}") from None
    problem = _architecture_problem(raw)
    if problem:
        raise InputError(f"{path}: {problem}; expected {expected}")
    return Architecture.from_dict(raw)


def _architecture_problem(raw) -> str | None:
    if not isinstance(raw, dict):
        return f"holds {type(raw).__name__}"
    missing = [key for key in ("num_inputs", "hidden", "num_outputs") if key not in raw]
    if missing:
        return f"lacks {', '.join(missing)}"
    if not isinstance(raw["hidden"], list):
        return f"hidden is {raw['hidden']!r}"
    for key, value in [("num_inputs", raw["num_inputs"]), ("num_outputs", raw["num_outputs"])] + [
        ("hidden", width) for width in raw["hidden"]
    ]:
        # bool is an int to Python, and int("53") or int(4.7) would quietly build another model.
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"{key} holds {value!r}"
    return _names_problem(raw)


def _names_problem(raw: dict) -> str | None:
    """The optional names of inputs and outputs (models saved before them have none)."""
    for key, size, kinds in [
        ("features", "num_inputs", str),
        ("classes", "num_outputs", int | str),
    ]:
        names = raw.get(key)
        if names is None:
            continue
        if not isinstance(names, list):
            return f"{key} is {names!r}, not a list"
        wrong = [n for n in names if isinstance(n, bool) or not isinstance(n, kinds)]
        if wrong:
            return f"{key} holds {wrong[0]!r}"
        if len(names) != raw[size] or len(set(names)) != len(names):
            return f"{key} is {names!r}, not {raw[size]} distinct names ({size})"
    if not isinstance(raw.get("standardize", False), bool):
        return f"standardize holds {raw['standardize']!r}"
    dropout = raw.get("dropout", 0.0)  # absent in models saved before dropout existed
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        return f"dropout holds {dropout!r}"
    return _encoding_problem(raw)


def _encoding_problem(raw: dict) -> str | None:
    """A table model's encoding (raw columns -> inputs) must give exactly its inputs."""
    if "encoding" not in raw:
        return None
    try:
        encoding = TableEncoding.from_dict(raw["encoding"])
    except ValueError as exc:
        return str(exc)
    if len(encoding.outputs) != raw["num_inputs"]:
        return f"encoding gives {len(encoding.outputs)} inputs, not num_inputs {raw['num_inputs']}"
    return None


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only: a checkpoint holding code is refused instead of run.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(
            f"{path}: file not found; expected a state_dict saved by the pipeline"
        ) from None
    except pickle.UnpicklingError:
        raise InputError(
            f"{path}: refused, it holds objects other than tensors; expected a plain state_dict"
        ) from None
    except Exception:  # torch.load raises many kinds of errors for bytes it cannot parse
        raise InputError(f"{path}: unreadable or truncated; expected a torch state_dict") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: holds {type(state).__name__}; expected a state_dict of tensors")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(
                f"{path}: {key!r} holds {type(value).__name__}; expected a state_dict of tensors"
            )
    return state


def _check_keys_and_shapes(model, state, path: Path, arch: Architecture) -> None:
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state.items()}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k} {found[k]} vs {expected[k]}"
        for k in expected
        if k in found and found[k] != expected[k]
    ]
    if missing or unexpected or shapes:
        details = "; ".join(
            part
            for part in (
                f"missing {missing}" if missing else "",
                f"unexpected {unexpected}" if unexpected else "",
                f"shapes {shapes}" if shapes else "",
            )
            if part
        )
        raise InputError(
            f"{path}: does not fit the architecture in {architecture_path(path).name} "
            f"({arch.num_inputs}-{'-'.join(map(str, arch.hidden))}-{arch.num_outputs}): {details}"
        )
