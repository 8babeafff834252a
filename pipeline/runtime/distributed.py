"""Where training runs: the device, and the process layout (one process, or DDP under torchrun).

Every mode shares `engine.fit`; only this module knows how processes are laid out.
- single: one process, on the CPU or one GPU.
- ddp: torch.distributed workers started by torchrun's elastic launcher, gloo on the CPU and NCCL
  on CUDA (one process per GPU). `python -m pipeline.stages.train` starts `train.nproc` workers on
  this machine itself (`launch_workers`: a standalone rendezvous on a free port); under a user's own
  `torchrun` (which sets RANK, the switch nanoGPT uses too) the same module is one of the workers.

`train.batch_size` is per process: with DistributedSampler, rank r of W reads samples r, r+W,
r+2W, ..., so batch i of all ranks together is batch i of one process at W times the batch size,
and DDP's gradient average is that big batch's gradient (every rank's batch has the same size).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from pipeline.process.errors import InputError
from pipeline.process.signals import Interrupted
from pipeline.runtime.devices import choose_device, ddp_device_type, usable_cuda_devices

# The launcher tells its workers where to report an exception (see `_reporting_failures`).
FAILURE_DIR_VARIABLE = "PIPELINE_FAILURE_DIR"
# Tests only: PIPELINE_TEST_FAIL_RANK=R makes global rank R raise as its first epoch starts, so the
# failure path (one rank dies while the others wait in a collective) runs with real processes.
TEST_FAIL_RANK_VARIABLE = "PIPELINE_TEST_FAIL_RANK"
# Seconds the launcher gives workers between SIGTERM and SIGKILL once one of them has failed.
SHUTDOWN_GRACE_S = 10


def under_torchrun() -> bool:
    """torchrun (or our own launcher) sets RANK in every worker it starts."""
    return "RANK" in os.environ


def launches_workers(strategy: str) -> bool:
    """`strategy: ddp` outside torchrun: this process starts the workers instead of training."""
    return strategy == "ddp" and not under_torchrun()


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


@dataclass(frozen=True)
class Layout:
    """What the launcher starts on this machine: `nproc` workers on one device type."""

    device_type: str
    nproc: int

    def tags(self) -> dict[str, str]:
        backend = "nccl" if self.device_type == "cuda" else "gloo"
        return _tags(self.device_type, backend, self.nproc)


def plan_launch(device_spec: str, nproc: int, found: int | None = None) -> Layout:
    found = usable_cuda_devices() if found is None else found
    return Layout(ddp_device_type(device_spec, found, nproc, "train.nproc"), nproc)


def _tags(device: str, backend: str, world_size: int) -> dict[str, str]:
    strategy = "single" if backend == "none" else "ddp"
    return {
        "device": device,
        "backend": backend,
        "world_size": str(world_size),
        "strategy": strategy,
    }


@dataclass(frozen=True)
class Runtime:
    """This process's place in the job; every method is a no-op for a single process."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    backend: str = "none"

    @property
    def is_main(self) -> bool:
        """Global rank 0 alone talks to MLflow and writes outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend != "none"

    def tags(self) -> dict[str, str]:
        device = self.device.type if self.distributed else str(self.device)
        return _tags(device, self.backend, self.world_size)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    @staticmethod
    def unwrap(model: torch.nn.Module) -> torch.nn.Module:
        """The plain module: its state_dict has no `module.` prefix and loads into an MLP."""
        ddp = torch.nn.parallel.DistributedDataParallel
        return model.module if isinstance(model, ddp) else model

    def sampler(self, dataset, shuffle: bool, seed: int, drop_last: bool):
        if not self.distributed:
            return None
        return make_sampler(dataset, self.rank, self.world_size, shuffle, seed, drop_last)

    def start_epoch(self, sampler, epoch: int) -> None:
        if sampler is not None:
            sampler.set_epoch(epoch)  # a new shuffle per epoch, the same on every rank
        if epoch == 0 and os.environ.get(TEST_FAIL_RANK_VARIABLE) == str(self.rank):
            raise RuntimeError(f"{TEST_FAIL_RANK_VARIABLE}={self.rank}: rank {self.rank} fails")

    @property
    def reduce_loss(self):
        return self.mean_over_ranks if self.distributed else None

    def mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        # gloo has no AVG: sum, then divide.
        total = value.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size

    def decided_by_main(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank: rank 0 alone validates, so it alone decides whether
        early stopping ends training, and every rank must leave the loop at the same epoch."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def make_sampler(dataset, rank: int, world_size: int, shuffle: bool, seed: int, drop_last: bool):
    """Rank `rank`'s share. drop_last trims the tail to a multiple of world_size (else it pads
    with repeats): either way every rank runs the same number of equal-sized batches."""
    return DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
    )


@contextlib.contextmanager
def setup(device_spec: str, strategy: str) -> Iterator[Runtime]:
    """This process's runtime for one training: alone, or one worker of a process group."""
    if not under_torchrun():
        if strategy == "ddp":
            raise InputError(
                "train.strategy is 'ddp' but this process was not started by torchrun; run "
                "`python -m pipeline.stages.train`, which starts train.nproc workers itself"
            )
        yield Runtime(choose_device(device_spec))
        return
    with _reporting_failures():
        runtime = _join_process_group(device_spec, strategy)
        yield runtime
        # Only after a success: a failed worker exits anyway, and a group with a dead peer may
        # not tear down cleanly.
        dist.destroy_process_group()


def _join_process_group(device_spec: str, strategy: str) -> Runtime:
    world_size, per_node = int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_WORLD_SIZE"])
    if strategy != "ddp":
        raise InputError(
            f"train.strategy is {strategy!r} but torchrun started {world_size} process(es); "
            "expected train.strategy: ddp"
        )
    source = "train.nproc" if FAILURE_DIR_VARIABLE in os.environ else "torchrun --nproc-per-node"
    device = torch.device("cpu")
    if ddp_device_type(device_spec, usable_cuda_devices(), per_node, source) == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    # env:// — torchrun has set MASTER_ADDR/PORT, RANK and WORLD_SIZE.
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    return Runtime(device, dist.get_rank(), dist.get_world_size(), backend)


@contextlib.contextmanager
def _reporting_failures() -> Iterator[None]:
    """In a launched worker, record an exception with a precise time as soon as it is raised.

    When one rank raises, the others fail too (a collective loses its peer, or the launcher stops
    them), and torchrun's own error files keep whole seconds only: the earliest report names the
    rank that failed first.
    """
    try:
        yield
    except BaseException as exc:
        folder, rank = os.environ.get(FAILURE_DIR_VARIABLE), os.environ["RANK"]
        if folder:
            report = {"rank": int(rank), "error": _one_line(exc), "time_ns": time.time_ns()}
            with contextlib.suppress(OSError):
                (Path(folder) / f"rank-{rank}.json").write_text(json.dumps(report))
        raise


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class WorkerFailed(Exception):
    """A launched worker failed; the whole job has been stopped."""

    def __init__(self, rank: int, exitcode: int, error: str):
        super().__init__(f"rank {rank} failed (exit code {exitcode}): {error}")
        self.rank, self.exitcode, self.error = rank, exitcode, error


def launch_workers(nproc: int, args: list[str], env: dict[str, str]) -> None:
    """Run `python -m pipeline.stages.train ARGS` as `nproc` DDP workers here, as
    `torchrun --standalone` does: a c10d rendezvous on a free port (so two trainings never
    collide), no restarts.

    Returns when every worker has succeeded; raises WorkerFailed naming the first rank that
    failed after the launcher has stopped the others, or KeyboardInterrupt on SIGINT/SIGTERM.
    """
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    with tempfile.TemporaryDirectory(prefix="pipeline-ddp-") as scratch:
        reports = Path(scratch, "failures")
        reports.mkdir()
        env = {**env, FAILURE_DIR_VARIABLE: str(reports)}
        if "OMP_NUM_THREADS" not in os.environ:  # as torchrun: not one thread per core each
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
        config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=nproc,
            run_id=str(uuid.uuid4()),
            rdzv_backend="c10d",
            rdzv_endpoint="localhost:0",
            max_restarts=0,
            logs_specs=DefaultLogsSpecs(log_dir=str(Path(scratch, "logs"))),
            shutdown_timeout=SHUTDOWN_GRACE_S,
        )
        try:
            with _inherited(env):
                elastic_launch(config, sys.executable)("-m", "pipeline.stages.train", *args)
        except ChildFailedError as exc:
            raise _first_failure(exc, reports) from None
        except SignalException as exc:
            if exc.sigval == signal.SIGINT:
                raise KeyboardInterrupt("SIGINT") from None
            raise Interrupted(f"signal {exc.sigval.name}") from None


@contextlib.contextmanager
def _inherited(env: dict[str, str]) -> Iterator[None]:
    """Variables for the workers (they inherit this process's environment), then the old one."""
    before = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


def _first_failure(exc, reports: Path) -> WorkerFailed:
    reported = [json.loads(path.read_text()) for path in reports.glob("rank-*.json")]
    if not reported:  # killed before it could report (e.g. out of memory): torchrun's view
        rank, failure = exc.get_first_failure()
        return WorkerFailed(rank, failure.exitcode, str(failure.message))
    first = min(reported, key=lambda report: report["time_ns"])
    failure = exc.failures.get(first["rank"])
    return WorkerFailed(first["rank"], failure.exitcode if failure else 1, first["error"])
