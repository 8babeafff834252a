"""Where training runs: device choice and the process group (one process for now).

Everything that depends on the process layout lives here, so the training loop is the same for
every mode. The DDP half (torchrun, process groups, samplers) plugs in behind `setup()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.errors import InputError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Global rank 0 alone talks to MLflow and writes outputs."""
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "none"


def choose_device(spec: str) -> torch.device:
    """`auto` picks CUDA when present; an explicit CUDA device must exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= found:
        raise InputError(
            f"train.device is {spec!r}; found {found} usable CUDA device(s): "
            "use train.device: cpu or auto"
        )
    return torch.device(spec)


def setup(device_spec: str) -> Runtime:
    return Runtime(device=choose_device(device_spec))
