"""How many CPU threads torch takes, beside the processes that share the machine with it."""

from __future__ import annotations

import os

import torch


def leave_a_core(device: torch.device) -> None:
    """A stage on CPU (train, evaluate) leaves one core to the rest: the tracking agent, DVC,
    the system.

    torch takes every core by default; on a 2-core machine its threads then wait for each other
    whenever anything else runs, and this small MLP trained 1.7x slower beside the agent and
    2-4x slower on a busy machine (benchmarks/README.md). Tracked or not, so that tracking
    changes neither the speed nor the arithmetic. An explicit OMP_NUM_THREADS is the user's
    choice and stays.
    """
    _cpu_threads(device, max(1, torch.get_num_threads() - 1))


def one_thread_per_worker(device: torch.device) -> None:
    """Trials on the CPU train on one thread: the MLP is too small for torch's intra-op threads
    to pay, and on a busy 2-core machine they made a default trial take 23.6 s instead of 1.0 s.
    More cores: start more workers. An explicit OMP_NUM_THREADS is the user's choice and stays.
    """
    _cpu_threads(device, 1)


def _cpu_threads(device: torch.device, count: int) -> None:
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(count)
