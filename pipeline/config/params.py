"""The only reader of params.yaml: typed, validated, frozen dataclasses.

Every stage calls `load_params()` first, and the `validate` stage runs it before any stage that
writes, so a bad params.yaml changes nothing on disk (DVC deletes a stage's outputs before it
runs the stage, which is too late to check there).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from pipeline.config.rules import check_consistency
from pipeline.config.schema import Params
from pipeline.process.errors import InputError

DEFAULT_PATH = Path("params.yaml")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` (no dot) as a string; users mean a number. A key given twice is
    refused: plain YAML keeps the last one silently, so an edit could have no effect."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def load_params(path: Path | str = DEFAULT_PATH) -> Params:
    path = Path(path)
    raw = read_yaml(path, expected="the pipeline's params.yaml")
    params = build(raw if raw is not None else {}, source=str(path))
    check_consistency(params, source=str(path))
    return params


def read_yaml(path: Path, expected: str) -> Any:
    """A YAML file read as params.yaml is (numbers such as 1e-3, no key twice), or InputError."""
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; expected {expected}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        problem = f" ({exc.problem})" if getattr(exc, "problem", None) else ""
        raise InputError(
            f"{path}: not valid YAML{line}{problem}; expected a mapping of keys, each once"
        ) from None


def with_values(params: Params, values: dict[str, Any], source: str) -> Params:
    """`params` with some dotted keys (`train.lr`) replaced, validated as params.yaml is."""
    tree = dataclasses.asdict(params)
    for key, value in values.items():
        *sections, name = key.split(".")
        node = tree
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if not isinstance(node, dict) or name not in node or isinstance(node[name], dict):
            raise InputError(f"{source}: unknown key '{key}'{_suggest('', key)}")
        node[name] = list(value) if isinstance(value, tuple) else value
    tree = _untuple(tree)
    changed = build(tree, source=source)
    check_consistency(changed, source=source)
    return changed


def _untuple(tree: dict[str, Any]) -> dict[str, Any]:
    # asdict keeps tuples (model.hidden); build() expects what YAML gives: lists.
    return {
        k: _untuple(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v
        for k, v in tree.items()
    }


def build(raw: Any, source: str = "params.yaml") -> Params:
    """Turn a parsed mapping into Params, refusing unknown keys and wrong types."""
    return _build(Params, raw, prefix="", source=source)


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    if not isinstance(raw, dict):
        where = prefix.rstrip(".") or "the top level"
        raise InputError(f"{source}: {where} is {raw!r}; expected a mapping of keys")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            raise InputError(f"{source}: unknown key '{prefix}{key}'{_suggest(prefix, key)}")
    values = {}
    for name in names:
        if name not in raw:
            continue
        key, hint = prefix + name, hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name], prefix=key + ".", source=source)
        else:
            values[name] = _convert(key, raw[name], hint, source)
    return cls(**values)


def _suggest(prefix: str, key: str) -> str:
    every_key = list(Params().flat()) + [f.name for f in dataclasses.fields(Params)]
    close = difflib.get_close_matches(prefix + str(key), every_key, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _convert(key: str, value: Any, hint: Any, source: str) -> Any:
    def refuse(expected: str) -> InputError:
        return InputError(f"{source}: {key} is {value!r}; expected {expected}")

    # bool is a subclass of int in Python, so `epochs: true` must be refused explicitly.
    if hint is bool or hint == bool | None:
        if not isinstance(value, bool) and not (value is None and hint is not bool):
            raise refuse("true or false")
        return value
    if hint == int | None:  # train.seed: null means "the top-level seed"
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise refuse("a whole number or null")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise refuse("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise refuse("a string")
        return value
    if hint == tuple[int, ...]:
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise refuse("a list of whole numbers such as [30, 20]")
        return tuple(value)
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise refuse("a list of column names such as [alcohol, ash]")
        return tuple(value)
    raise TypeError(f"no conversion for {key}: {hint}")
