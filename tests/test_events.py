"""The record contract: snapshots, plain values, reading records back."""

from __future__ import annotations

import logging

import numpy as np
import torch
from conftest import make_manager

from ppe_slacklog.events import (
    EventSummary,
    ManagerSnapshot,
    event_extra,
    event_of,
    plain_value,
)


def test_plain_value_converts_tensors_and_numpy() -> None:
    assert plain_value(torch.tensor(1.5)) == 1.5
    assert plain_value(torch.tensor([2])) == 2
    assert plain_value(np.float32(0.5)) == 0.5
    assert plain_value(torch.tensor([1, 2])) == "[1, 2]"
    assert plain_value(torch.zeros(100, 100)) == "<Tensor shape=(100, 100)>"
    assert plain_value(True) is True
    assert plain_value(object()).startswith("<object object")


def test_snapshot_of_real_manager_is_frozen() -> None:
    manager = make_manager(max_epochs=2, iters_per_epoch=3)
    with manager.run_iteration():
        pass
    snap = ManagerSnapshot.of(manager)
    assert (snap.epoch, snap.iteration, snap.max_epochs) == (0, 1, 2)
    assert snap.epoch_detail == 1 / 3
    with manager.run_iteration():
        pass
    assert snap.iteration == 1  # the live manager moved on; the snapshot did not


def test_event_roundtrip_through_a_record() -> None:
    snap = ManagerSnapshot(epoch=3, iteration=30, observation={"loss": 0.1})
    extra = event_extra(
        kind="trigger", run_id="r", snapshot=snap, context={"a": 1}, filenames=["f"]
    )
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.__dict__.update(extra)
    event = event_of(record)
    assert event is not None
    assert (event.kind, event.epoch, event.run_id) == ("trigger", 3, "r")
    assert event.observations == {"loss": 0.1}
    assert event.filenames == ["f"]
    assert event.has_template and event.template is None


def test_hand_written_record_is_accepted() -> None:
    record = logging.makeLogRecord({"ppe_event": "end", "epoch": 5, "iteration": 9})
    event = event_of(record)
    assert event is not None and event.manager.epoch == 5
    assert not event.has_template
    assert event_of(logging.makeLogRecord({"msg": "plain"})) is None


def test_summary_is_one_readable_line() -> None:
    snap = ManagerSnapshot(epoch=1, iteration=10, elapsed_time=2.5)
    assert str(EventSummary("end", snap, {})) == (
        "training finished (epoch 1, iteration 10, 2.5s)"
    )
    assert str(EventSummary("trigger", snap, {"loss": 1})) == (
        "epoch 1, iteration 10: loss=1"
    )
