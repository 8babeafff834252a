"""pipeline.process.signals.held: a signal that comes during a store call waits for the call's end.

The last test replays what CI once hit: SIGTERM landing inside an Optuna SQLite query, after
which telling the study that the trial failed raised "database is locked"."""

from __future__ import annotations

import signal

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import event

from pipeline.process.signals import Interrupted, held


@pytest.fixture
def sigterm_raises():
    """SIGTERM raises Interrupted, as it does inside tracking.run_status."""

    def raise_interrupted(signum, frame):
        raise Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    yield raise_interrupted
    signal.signal(signal.SIGTERM, previous)


def test_a_held_sigint_is_raised_when_the_block_ends_and_the_handlers_come_back():
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt), held():
        signal.raise_signal(signal.SIGINT)
        reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_sigterm_goes_to_the_handler_in_place_before(sigterm_raises):
    with pytest.raises(Interrupted, match="signal 15"), held():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is sigterm_raises


def test_as_a_decorator_each_call_holds_and_quiet_calls_raise_nothing(sigterm_raises):
    @held()
    def store_call(signal_it: bool) -> str:
        if signal_it:
            signal.raise_signal(signal.SIGTERM)
        return "written"

    assert store_call(False) == "written"
    with pytest.raises(Interrupted):
        store_call(True)
    assert store_call(False) == "written"


def test_a_sigterm_inside_an_optuna_query_leaves_the_study_writable(tmp_path, sigterm_raises):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(storage=storage)
    study.tell(study.ask(), 1.0)
    trial = study.ask()
    signalled = []

    @event.listens_for(storage.engine, "after_cursor_execute")
    def signal_once_mid_query(conn, cursor, statement, *args):
        if not signalled and statement.lstrip().upper().startswith("SELECT"):
            signalled.append(statement)
            signal.raise_signal(signal.SIGTERM)

    complete = None
    with pytest.raises(Interrupted), held():
        complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert signalled and len(complete) == 1  # the query ran to its end before the signal
    study.tell(trial, state=TrialState.FAIL)
    assert study.trials[-1].state == TrialState.FAIL
