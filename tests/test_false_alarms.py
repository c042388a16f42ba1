"""Exits that are not interruptions, and runs nobody watches any more.

A process that ends normally before its loop reached the stop trigger says
where it stopped (a ``stopped`` event at INFO, not broadcast); one that never
trained says nothing at exit; a run whose manager was dropped, or whose own
handler was taken away, is not reported at exit. Each exit is a real child
process (exit hooks only run at the end of a real interpreter).
"""

from __future__ import annotations

import gc
import textwrap
import weakref

import pytest
import pytorch_pfn_extras as ppe
import torch
from conftest import run_python

import ppe_slacklog
from ppe_slacklog import _interrupts
from ppe_slacklog.testing import EmulatedMessage, SlackEmulator

CHANNEL = "experiment-progress"

# Prints each training record as "record <kind> <level> <reason>".
_SETUP = """
    import logging, sys, torch, pytorch_pfn_extras as ppe, ppe_slacklog

    def show(record):
        kind = getattr(record, "ppe_event", None)
        if kind:
            reason = getattr(record, "reason", "-")
            print("record", kind, record.levelname, reason, sep="|", flush=True)
        return True

    training_logger = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
    training_logger.addFilter(show)
    training_logger.setLevel(logging.INFO)  # the filter sees every event
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    manager = ppe.training.ExtensionsManager(model, optimizer, 10, iters_per_epoch=1)
    manager.extend(ppe_slacklog.Slack({channel!r}))
"""

_THREE_ITERATIONS = """
    for _ in range(3):
        with manager.run_iteration():
            pass
"""


def _child(emu: SlackEmulator, *code: str) -> tuple[int, list[list[str]], str]:
    """Runs the setup, then ``code``: exit status, the records it logged, stderr."""
    parts = [_SETUP.format(channel=CHANNEL), *code]
    child = run_python(emu, "".join(textwrap.dedent(part) for part in parts))
    records = [
        line.split("|")[1:]
        for line in child.stdout.splitlines()
        if line.startswith("record|")
    ]
    return child.returncode, records, child.stderr


def _thread(emu: SlackEmulator) -> list[EmulatedMessage]:
    (top,) = emu.top_level(CHANNEL)
    return emu.thread(CHANNEL, top.ts)


def test_a_run_that_never_trained_posts_nothing_at_exit(emu: SlackEmulator) -> None:
    # ppe starts the extensions in state_dict(), before any training: the
    # start waits for the first iteration, which never comes; nothing ran,
    # so the exit is no news either.
    status, records, err = _child(emu, "manager.state_dict()\n")
    assert status == 0, err
    assert records == []
    assert emu.messages(CHANNEL) == []
    assert "interrupted" not in err


def _assert_stopped(emu: SlackEmulator, records: list[list[str]]) -> None:
    assert records[-1] == ["stopped", "INFO", "the process exited with no error seen"]
    last = _thread(emu)[-1]
    assert last.text.startswith(
        "⏹️ *Training stopped at epoch 3 of 10 (iteration 3) before its stop "
        "trigger; the process exited with no error seen."
    ), last.text
    assert "interrupted" not in last.text
    assert not last.reply_broadcast  # news in the thread, not an alert


def test_a_loop_that_ends_early_says_it_stopped(emu: SlackEmulator) -> None:
    status, records, err = _child(emu, _THREE_ITERATIONS)
    assert status == 0, err
    _assert_stopped(emu, records)


def test_sys_exit_zero_after_an_early_loop_is_a_stop(emu: SlackEmulator) -> None:
    status, records, err = _child(emu, _THREE_ITERATIONS, "sys.exit(0)\n")
    assert status == 0, err
    _assert_stopped(emu, records)


def test_sys_exit_zero_from_a_function_is_a_stop(emu: SlackEmulator) -> None:
    # Only main()'s frame holds the manager, and sys.exit unwinds it before
    # the exit hooks run: the run still says where it stopped.
    main = """
    def main(manager):
        for _ in range(3):
            with manager.run_iteration():
                pass
        sys.exit(0)

    held = [manager]
    del manager
    main(held.pop())
    """
    status, records, err = _child(emu, main)
    assert status == 0, err
    _assert_stopped(emu, records)


@pytest.mark.parametrize("call", ["sys.exit(2)", "exit(2)", "quit(2)"])
def test_an_exit_with_an_error_status_is_an_interruption(
    emu: SlackEmulator, call: str
) -> None:
    status, records, err = _child(emu, _THREE_ITERATIONS, call + "\n")
    assert status == 2, err
    reason = "the process exited with status 2"
    assert records[-1] == ["interrupted", "WARNING", reason]
    last = _thread(emu)[-1]
    assert f"Training interrupted: {reason}." in last.text
    assert last.reply_broadcast


def test_an_abandoned_run_lets_its_model_go(slack_env: SlackEmulator) -> None:
    # A notebook cell stopped by Ctrl-C: ppe calls no on_error for it, and
    # the user starts over with a new model.
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    manager = ppe.training.ExtensionsManager(model, optimizer, 5, iters_per_epoch=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL))
    with pytest.raises(KeyboardInterrupt), manager.run_iteration():
        raise KeyboardInterrupt
    collected = weakref.ref(model)
    del manager, model, optimizer
    gc.collect()
    assert collected() is None
    assert not [w for w in _interrupts._watched.values() if w.owner is not None]


def test_ppe_style_tests_print_nothing_at_exit(emu: SlackEmulator) -> None:
    # Like ppe's own test suite: runs of 2 of 5 iterations, after which the
    # test's fixture closes and removes the handlers. One manager is dropped,
    # one kept (as a failed test's traceback keeps it).
    code = """
    def two_of_five():
        manager = ppe.training.ExtensionsManager(
            model, optimizer, 5, iters_per_epoch=1
        )
        manager.extend(ppe_slacklog.Slack({channel!r}))
        for _ in range(2):
            with manager.run_iteration():
                pass
        logger = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
        for handler in logger.handlers[:]:
            handler.close()
            logger.removeHandler(handler)
        return manager

    two_of_five()
    kept = two_of_five()
    print("done", flush=True)
    """.replace("{channel!r}", repr(CHANNEL))
    # The setup's own manager is not used: drop it and its extension.
    status, records, err = _child(emu, "del manager\n", code)
    assert status == 0, err
    assert err == ""
    kinds = [r[0] for r in records]
    assert kinds.count("start") == 2
    assert "interrupted" not in kinds and "stopped" not in kinds
