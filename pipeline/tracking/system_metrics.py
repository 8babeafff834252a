"""System metrics of a training: CPU and memory (GPU where present), sampled by the tracking
agent, a process of its own, so that sampling never runs inside the training loop.

The samples come from MLflow's own monitors and carry MLflow's names
(`system/cpu_utilization_percentage`, `system/system_memory_usage_megabytes`,
`system/gpu_0_utilization_percentage`, ...), so the UI's System metrics tab shows them. Under DDP
rank 0 samples its node, named in the keys (`system/<host>/...`) as MLflow does for nodes.
"""

from __future__ import annotations

import os
import time

# MLflow samples every 10 s by default: longer than a whole training on the defaults.
SAMPLE_INTERVAL_S = 1.0
# The training process's own peak resident memory, sent by the trainer when its run ends.
PEAK_MEMORY_METRIC = "system/train_peak_memory_megabytes"


def system_metrics_enabled() -> bool:
    return os.environ.get("PIPELINE_SYSTEM_METRICS", "1") != "0"


class SystemSampler:
    """One sample per interval, averaged by MLflow's monitors, as (key, step, ms, value) points."""

    def __init__(self, node: str | None = None):
        from mlflow.environment_variables import MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL
        from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor

        self.monitors = [CPUMonitor(), *_gpu_monitors()]
        self.prefix = "system/" + (f"{node}/" if node else "")
        self.interval = MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL.get() or SAMPLE_INTERVAL_S
        self.step = 0
        # psutil measures CPU use between two calls: this one starts the first interval.
        self.collect()
        for monitor in self.monitors:
            monitor.clear_metrics()
        self.due_at = time.monotonic() + self.interval

    def due(self) -> list[tuple[str, int, int, float]]:
        """A sample if the interval has passed, else nothing."""
        return self.sample() if time.monotonic() >= self.due_at else []

    def sample(self) -> list[tuple[str, int, int, float]]:
        self.collect()
        values: dict[str, float] = {}
        for monitor in self.monitors:
            values.update(monitor.aggregate_metrics())
            monitor.clear_metrics()
        now_ms = int(time.time() * 1000)
        points = [(self.prefix + key, self.step, now_ms, float(v)) for key, v in values.items()]
        self.step += 1
        self.due_at = time.monotonic() + self.interval
        return points

    def collect(self) -> None:
        for monitor in self.monitors:
            monitor.collect_metrics()


def _gpu_monitors() -> list:
    """NVIDIA's or AMD's monitor where such a GPU and its library are present, as MLflow does."""
    from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor
    from mlflow.system_metrics.metrics.rocm_monitor import ROCMMonitor

    for monitor in (GPUMonitor, ROCMMonitor):
        try:
            return [monitor()]
        except Exception:  # no such GPU, or its library is not installed
            continue
    return []
