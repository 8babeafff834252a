"""Atomic writes: a failed or interrupted write never leaves a half-written or mixed output."""

from __future__ import annotations

import os
import signal
import stat

import pytest

from pipeline.process.files import all_or_nothing, atomic_path, write_text
from pipeline.process.signals import held as _interruptions_held


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_outputs_get_the_mode_open_gives_new_files(tmp_path):
    (tmp_path / "plain.txt").write_text("x")
    write_text(tmp_path / "atomic.txt", "x")
    mode = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode) == mode


def test_a_group_interrupted_midway_keeps_every_previous_file(tmp_path):
    first, second = tmp_path / "model.pth", tmp_path / "train.json"
    first.write_text("old model")
    second.write_text("old metrics")
    with pytest.raises(KeyboardInterrupt), all_or_nothing():
        write_text(first, "new model")
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the two writes
        write_text(second, "new metrics")
    assert (first.read_text(), second.read_text()) == ("old model", "old metrics")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth", "train.json"]


def test_a_group_lands_whole_once_its_block_ends(tmp_path):
    first, second = tmp_path / "model.pth", tmp_path / "train.json"
    first.write_text("old model")
    with all_or_nothing():
        write_text(first, "new model")
        assert first.read_text() == "old model"  # held back until every write succeeded
        write_text(second, "new metrics")
        assert not second.exists()
    assert (first.read_text(), second.read_text()) == ("new model", "new metrics")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth", "train.json"]


def test_interruptions_wait_until_the_renames_are_done():
    delivered = []
    with pytest.raises(KeyboardInterrupt), _interruptions_held():
        os.kill(os.getpid(), signal.SIGINT)
        delivered.append("after the signal, still inside")
    assert delivered == ["after the signal, still inside"]
