"""The statistics behind `pipeline.compare` (pipeline/reports/seeds.py) against scipy and against
real seeds of a real training, and the command on a real queued DVC sweep of configurations x
training seeds (one sweep, shared by every assertion about it)."""

from __future__ import annotations

import math
import sys

import mlflow
import numpy as np
import pytest
import torch
from helpers import SMALL_PARAMS, run
from scipy import stats
from sweep_helpers import RATES, TRAIN_SEEDS
from tune_helpers import make_workspace

from pipeline import compare
from pipeline.config.params import load_params, with_values
from pipeline.config.schema import configuration_digest
from pipeline.reports import seeds
from pipeline.reports.configurations import configurations, experiments, read_params
from pipeline.search.trials import fit_trial, load_splits

SEEDS = 60  # real trainings of one configuration, each with its own train.seed
DRAWN = 5  # seeds per interval, as a small sweep would run


@pytest.fixture(scope="module")
def seed_results(tmp_path_factory) -> np.ndarray:
    """(val_accuracy, val_loss) of SEEDS training seeds of SMALL_PARAMS, trained in-process."""
    workspace = make_workspace(tmp_path_factory.mktemp("coverage") / "w", epochs=2)
    params = load_params(workspace / "params.yaml")
    train_split, val_split = load_splits(workspace / "data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread is several times faster here
    try:
        results = [
            fit_trial(
                params=with_values(params, {"train.seed": seed}, source="test"),
                train_split=train_split,
                val_split=val_split,
                device=torch.device("cpu"),
                on_validation=lambda *_: None,
            )
            for seed in range(SEEDS)
        ]
    finally:
        torch.set_num_threads(threads)
    return np.array([(accuracy, loss) for loss, accuracy in results])


def coverage(values: np.ndarray, interval, draws: int = 4000) -> float:
    """How often the interval of DRAWN seeds covers the mean of the other SEEDS - DRAWN."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(draws):
        order = rng.permutation(len(values))
        low, high = interval(values[order[:DRAWN]])
        covered += low <= values[order[DRAWN:]].mean() <= high
    return covered / draws


def expected_coverage(critical: float) -> float:
    """For normal values: (mean of DRAWN - mean of the rest) / (s / sqrt(DRAWN)) is Student's t
    with DRAWN - 1 degrees of freedom, scaled by sqrt(1 + DRAWN / rest)."""
    rest = SEEDS - DRAWN
    return float(2 * stats.t.cdf(critical / math.sqrt(1 + DRAWN / rest), DRAWN - 1) - 1)


@pytest.mark.parametrize("column", [0, 1], ids=["val_accuracy", "val_loss"])
def test_the_95_interval_covers_the_mean_of_other_seeds_as_often_as_it_should(seed_results, column):
    values = seed_results[:, column]
    assert values.std() > 0  # the seeds do spread the figure

    def t_interval(sample):
        spread = seeds.spread(sample)
        return spread.low, spread.high

    def z_interval(sample):  # the usual mistake with 5 values: the normal's 1.96
        half = 1.96 * sample.std(ddof=1) / math.sqrt(len(sample))
        return sample.mean() - half, sample.mean() + half

    expected = expected_coverage(stats.t.ppf(0.975, DRAWN - 1))
    assert 0.93 < expected < 0.95
    assert abs(coverage(values, t_interval) - expected) < 0.04
    # The check can fail: the z interval's coverage is too low for it.
    assert abs(coverage(values, z_interval) - expected) >= 0.04


def test_spread_and_welch_are_scipys():
    a, b = [0.91, 0.93, 0.90, 0.94, 0.92], [0.89, 0.95, 0.86]
    spread = seeds.spread(a)
    low, high = stats.t.interval(0.95, 4, loc=np.mean(a), scale=stats.sem(a))
    assert (spread.n, spread.low, spread.high) == (5, pytest.approx(low), pytest.approx(high))
    assert spread.std == pytest.approx(np.std(a, ddof=1))
    assert seeds.spread([0.9]) == seeds.Spread(1, 0.9, None, None, None)  # no interval invented
    welch = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert seeds.welch_p(a, b) == pytest.approx(welch)
    assert abs(stats.ttest_ind(a, b).pvalue - welch) > 0.01  # Student's test would differ
    assert (seeds.welch_p([0.9, 0.9], [0.9, 0.9]), seeds.welch_p([1, 1], [0, 0])) == (1.0, 0.0)


def test_the_verdict_follows_welch_and_the_minimum_effect():
    clear = seeds.verdict(("a", [0.93, 0.94, 0.935]), ("b", [0.80, 0.81, 0.805]), 0.005)
    assert clear.distinguishable and clear.p_value < 0.05 and "Welch's t-test" in clear.line
    tiny = seeds.verdict(("a", [0.91, 0.93, 0.92]), ("b", [0.919, 0.921, 0.925]), 0.005)
    assert not tiny.distinguishable and "below the minimum effect" in tiny.line
    unsure = seeds.verdict(("a", [0.90, 0.94, 0.92]), ("b", [0.89, 0.93, 0.90]), 0.005)
    assert not unsure.distinguishable and unsure.seeds_needed > 3
    assert f"about {unsure.seeds_needed} seeds per configuration" in unsure.line
    single = seeds.verdict(("a", [0.95]), ("b", [0.90, 0.91]), 0.005)
    assert single.p_value is None and not single.distinguishable and "a has one run" in single.line


def test_seeds_needed_gives_the_power_it_promises():
    """Simulated sweeps at the promised number of seeds tell the difference 80 % of the time."""
    difference, std_a, std_b = 0.01, 0.011, 0.008
    needed = seeds.seeds_needed(difference, std_a, std_b)
    assert seeds.welch_power(difference, std_a, std_b, needed - 1) < seeds.POWER
    rng = np.random.default_rng(1)
    a = rng.normal(difference, std_a, size=(20000, needed))
    b = rng.normal(0.0, std_b, size=(20000, needed))
    told = (stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < seeds.ALPHA).mean()
    assert told == pytest.approx(seeds.welch_power(difference, std_a, std_b, needed), abs=0.015)
    assert told >= seeds.POWER - 0.015


@pytest.fixture(scope="module")
def sweep(queued_sweep):
    """The suite's shared sweep (sweep_helpers.py): compare's output and refusal, and the rows."""
    import dvc.api

    repo = queued_sweep.repo
    printed = run([sys.executable, "-m", "pipeline.compare"], repo, check=False)
    refused = run([sys.executable, "-m", "pipeline.compare", "--promote"], repo, check=False)
    rows = dvc.api.exp_show(repo=str(repo))
    return {"repo": repo, "printed": printed, "refused": refused, "rows": rows}


@pytest.mark.e2e
def test_a_sweep_groups_seeds_into_configurations(sweep):
    found, skipped = experiments(sweep["rows"])
    assert skipped == [] and len(found) == len(RATES) * len(TRAIN_SEEDS)
    order = configurations(found)
    assert [c.accuracy.n for c in order] == [len(TRAIN_SEEDS)] * len(RATES)
    assert {str(c.params["train.lr"]) for c in order[:2]} == {"0.1", "0.1001"}
    assert order[2].params["train.lr"] == 0.0001
    for configuration in order:
        assert sorted(run.train_seed for run in configuration.runs) == list(TRAIN_SEEDS)
        interval = seeds.spread(configuration.accuracies)
        assert configuration.accuracy == interval
    # An experiment from before train.seed existed reads as train.seed = seed.
    row = next(r for r in sweep["rows"] if r.get("Experiment") == order[0].best.name)
    old = {key: value for key, value in row.items() if key != "train.seed"}
    assert read_params(old).train_seed == SMALL_PARAMS["seed"]
    assert configuration_digest(read_params(old).flat()) == order[0].digest


@pytest.mark.e2e
def test_compare_tells_noise_from_a_real_difference(sweep):
    order = configurations(experiments(sweep["rows"])[0])
    printed = sweep["printed"]
    assert printed.returncode == 0, printed.stderr
    out = printed.stdout
    same, worse = order[1], order[2]
    assert f"verdict: {order[0].digest} and {same.digest} are not distinguishable" in out
    assert "Welch's t-test" in out
    worse_row = next(line for line in out.splitlines() if line.startswith(worse.digest))
    assert " distinguishable (p=" in worse_row and "not distinguishable" not in worse_row
    assert seeds.verdict(
        (order[0].digest, order[0].accuracies), (worse.digest, worse.accuracies), 0.005
    ).distinguishable
    best_run = order[0].best
    assert f"chosen on validation accuracy: {best_run.name} (train.seed" in out
    assert f"test_accuracy {best_run.test_accuracy:.4f}" in out
    # The table: seeds, mean ± std and the interval of each configuration.
    first_row = next(line for line in out.splitlines() if line.startswith(order[0].digest))
    spread = order[0].accuracy
    assert f"{spread.mean:.4f} ± {spread.std:.4f}" in first_row
    assert f"[{spread.low:.4f}, {spread.high:.4f}]" in first_row


@pytest.mark.e2e
def test_promote_refuses_an_indistinguishable_winner(sweep):
    refused = sweep["refused"]
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: --promote: configuration ")
    assert "--accept-indistinguishable" in line
    assert "promoted" not in refused.stdout
    accepted = run(
        [sys.executable, "-m", "pipeline.compare", "--promote", "--accept-indistinguishable"],
        sweep["repo"],
        check=False,
    )
    # Accepted, it promotes the best seed of the first configuration: @champion in the registry.
    assert accepted.returncode == 0, accepted.stderr
    best = configurations(experiments(sweep["rows"])[0])[0].best
    assert f"promoted {best.name} (run {best.run_id}):" in accepted.stdout
    assert "  mlp-pipeline @champion -> version 1 (new)" in accepted.stdout
    client = mlflow.MlflowClient(f"sqlite:///{sweep['repo'] / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("mlp-pipeline", "champion")
    assert champion.run_id == best.run_id
    assert champion.tags["dvc.exp_name"] == best.name
    assert float(champion.tags["val_accuracy"]) == pytest.approx(best.val_accuracy)

    # The same choice again moves nothing and registers no second version.
    again = run(
        [sys.executable, "-m", "pipeline.compare", "--promote", "--accept-indistinguishable"],
        sweep["repo"],
    ).stdout
    assert again.rstrip().endswith("mlp-pipeline version 1 is @champion already; nothing moved")
    assert len(client.search_model_versions("name = 'mlp-pipeline'")) == 1


@pytest.mark.e2e
def test_one_seed_per_configuration_is_ranked_but_not_tested(sweep):
    """The sweep's rows of one training seed: a ranking, no interval, no test, no promotion."""
    one_seed = [row for row in sweep["rows"] if row.get("train.seed") != TRAIN_SEEDS[1]]
    order = configurations(experiments(one_seed)[0])
    assert [c.accuracy.n for c in order] == [1] * len(RATES)
    decided = compare.decide(order, compare.MIN_EFFECT)
    assert not decided.distinguishable and decided.p_value is None
    lines = compare.report(order, decided, compare.MIN_EFFECT)
    rows = [line for line in lines if line.startswith(tuple(c.digest for c in order))]
    assert len(rows) == len(RATES) and all("none (n=1)" in row for row in rows)
    assert all(row.rstrip().endswith("not tested (n=1)") for row in rows[1:])
    assert lines[-1] == f"verdict: {decided.line}" and "one run" in decided.line
