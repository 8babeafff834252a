"""Which device a training uses: the CPU or a CUDA device, checked before any work."""

from __future__ import annotations

import torch

from pipeline.process.errors import InputError


def usable_cuda_devices() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def choose_device(spec: str, found: int | None = None) -> torch.device:
    """One process: `auto` picks CUDA when present; an explicit CUDA device must exist."""
    found = usable_cuda_devices() if found is None else found
    if spec == "cpu" or (spec == "auto" and not found):
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda")
    if not found:
        raise _no_gpu(spec)
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= found:
        raise InputError(
            f"train.device is {spec!r}; found {found} usable CUDA device(s): "
            "use train.device: cpu or auto"
        )
    return torch.device(spec)


def _no_gpu(spec: str) -> InputError:
    return InputError(
        f"train.device is {spec!r}; found no usable CUDA device: use train.device: cpu or auto"
    )


def ddp_device_type(spec: str, found: int, per_node: int, per_node_source: str) -> str:
    """DDP: `cpu` (gloo) or `cuda` (NCCL, local rank r on GPU r), checked before any work."""
    if spec == "cpu" or (spec == "auto" and not found):
        return "cpu"
    if spec.startswith("cuda:"):
        raise InputError(
            f"train.device is {spec!r} with train.strategy: ddp; expected cuda, auto or cpu "
            "(each DDP process takes the GPU of its local rank)"
        )
    if not found:
        raise _no_gpu(spec)
    if per_node > found:
        raise InputError(
            f"{per_node_source} is {per_node} with NCCL (one process per GPU); found {found} "
            f"usable CUDA device(s): expected at most {found}, or train.device: cpu"
        )
    return "cuda"
