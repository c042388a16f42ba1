"""No reported value, context or exception can stop training or lose its event.

Each test drives a real pytorch-pfn-extras training loop (or a real child
process) against the emulator with a value that refuses to become text: the
loop completes, the message arrives with an ``[unprintable: name]`` marker,
one warning names the key, and the handler's ``stats.unprintable`` counts it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from conftest import make_manager, run_training, thread_texts

import ppe_slacklog
from ppe_slacklog import (
    DEFAULT_LOGGER,
    JsonFormatter,
    SlackHandler,
    TemplateWarning,
    _safetext,
)
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"


class Hostile:
    """A value that refuses every conversion to text or number."""

    def _refuse(self, *args: Any) -> Any:
        raise RuntimeError("refused")

    __str__ = __repr__ = __float__ = __int__ = __format__ = item = _refuse

    def numel(self) -> int:
        return 1


class BrokenContext:
    """A ``context`` whose attributes and text raise."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"cannot read {name}")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("cannot format")


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warnings are once per key and process: start each test with none given."""
    monkeypatch.setattr(_safetext, "_warned", set())


def _meta() -> torch.Tensor:
    return torch.empty(1, device="meta")


def _configure(emu: SlackEmulator) -> tuple[SlackHandler, io.StringIO]:
    """A SlackHandler and a JSON-lines sink on the training logger."""
    logger = logging.getLogger(DEFAULT_LOGGER)
    handler = SlackHandler(CHANNEL, token=emu.token, base_url=emu.base_url)
    lines = io.StringIO()
    sink = logging.StreamHandler(lines)
    sink.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.addHandler(sink)
    logger.setLevel(logging.INFO)
    return handler, lines


@contextmanager
def _recorded() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _naming(caught: list[warnings.WarningMessage], key: str) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, TemplateWarning) and repr(key) in str(w.message)
    ]


def _events(lines: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines.getvalue().splitlines()]


def test_meta_tensor_becomes_a_marker_and_training_completes(
    emu: SlackEmulator,
) -> None:
    handler, lines = _configure(emu)
    manager = make_manager(max_epochs=2)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL, msg="e{manager.epoch} x={val/meta1:.3f} loss={loss}"
        )
    )
    with _recorded() as caught:
        run_training(manager, lambda m: {"val/meta1": _meta(), "loss": 0.5})

    assert manager.iteration == 4  # the loop ran to its end
    texts = thread_texts(emu, CHANNEL)
    assert texts[1:3] == [
        "e1 x=[unprintable: val/meta1] loss=0.5",
        "e2 x=[unprintable: val/meta1] loss=0.5",
    ]
    assert texts[-1].startswith("✅ *Training finished! ")  # finalize saw it too
    assert len(texts) == 4
    assert len(_naming(caught, "val/meta1")) == 1
    assert handler.stats.unprintable == 2
    events = _events(lines)
    assert [e["ppe_event"] for e in events] == ["start", "trigger", "trigger", "end"]
    assert events[1]["observations"] == {
        "val/meta1": "[unprintable: val/meta1]",
        "loss": 0.5,
    }


def test_unused_hostile_value_does_not_stop_training(emu: SlackEmulator) -> None:
    """ppe's default texts do not use the value: nothing shows, nothing stops."""
    handler, lines = _configure(emu)
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="{default}"))
    with _recorded() as caught:
        run_training(manager, lambda m: {"hostile2": Hostile(), "loss": 0.5})

    texts = thread_texts(emu, CHANNEL)
    assert texts[1:3] == ["Epoch #1", "Epoch #2"]
    assert len(texts) == 4
    assert len(_naming(caught, "hostile2")) == 1
    assert handler.stats.unprintable == 0  # no marker was shown
    summary = [e["message"] for e in _events(lines)][1]
    assert "hostile2=[unprintable: hostile2]" in summary


def test_hostile_value_in_a_template(emu: SlackEmulator) -> None:
    handler, _ = _configure(emu)
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="{hostile3:.2f} at {manager.epoch}"))
    with _recorded() as caught:
        run_training(manager, lambda m: {"hostile3": Hostile()})
    texts = thread_texts(emu, CHANNEL)
    assert texts[1:3] == [
        "[unprintable: hostile3] at 1",
        "[unprintable: hostile3] at 2",
    ]
    assert len(_naming(caught, "hostile3")) == 1
    assert handler.stats.unprintable == 2


def test_broken_context_loses_no_message(emu: SlackEmulator) -> None:
    handler, lines = _configure(emu)
    manager = make_manager(max_epochs=2)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL,
            start_msg="{context.run_name} starts",
            msg="{context} at {manager.epoch}",
            context=BrokenContext(),
        )
    )
    with _recorded() as caught:
        run_training(manager)

    texts = thread_texts(emu, CHANNEL)
    assert texts[:3] == [
        "[unprintable: context.run_name] starts",
        "[unprintable: context] at 1",
        "[unprintable: context] at 2",
    ]
    assert texts[3].startswith("✅ *Training finished! ")
    assert len(_naming(caught, "context.run_name")) == 1
    assert len(_naming(caught, "context")) == 1
    assert handler.stats.unprintable == 3
    # The JSON lines keep every event and its fields, whatever the context.
    events = _events(lines)
    assert [e["ppe_event"] for e in events] == ["start", "trigger", "trigger", "end"]
    assert all("format_error" not in e and "context" in e for e in events)


class Unspeakable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words")


def test_exception_without_text_is_still_reported(emu: SlackEmulator) -> None:
    handler, lines = _configure(emu)
    manager = make_manager(max_epochs=3)
    manager.extend(ppe_slacklog.Slack(CHANNEL))

    def report(m: Any) -> dict[str, Any]:
        if m.iteration == 3:
            raise Unspeakable()
        return {"val/meta4": _meta()}

    with _recorded() as caught, pytest.raises(Unspeakable):
        run_training(manager, report)

    error = emu.messages(CHANNEL)[-1].text
    assert error.startswith("❌ *Error during training. ")
    assert "\nUnspeakable: [unprintable: error]\nTraceback:\n```\n" in error
    assert "raise Unspeakable()" in error
    assert len(_naming(caught, "error")) == 1
    assert handler.stats.unprintable == 1
    last = _events(lines)[-1]
    assert last["ppe_event"] == "error"
    assert last["exc_type"] == "Unspeakable"
    assert last["exc_message"] == "[unprintable: error]"


def test_plain_records_with_hostile_arguments(emu: SlackEmulator) -> None:
    """Any record, not only training events: the handler's rendering is total."""
    log = logging.getLogger("myproject")
    log.propagate = False  # pytest's capturing handler would raise on these
    handler = SlackHandler(CHANNEL, token=emu.token, base_url=emu.base_url)
    lines = io.StringIO()
    sink = logging.StreamHandler(lines)
    sink.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.addHandler(sink)
    with _recorded() as caught:
        log.warning("weights %s, step %d", Hostile(), 7)
        log.warning(Hostile())
    handler.flush()
    texts = "\n".join(m.text for m in emu.messages(CHANNEL))
    assert texts == (
        "⚠️ *myproject* weights [unprintable: args[0]], step 7\n"
        "⚠️ *myproject* [unprintable: message]"
    )
    assert handler.stats.unprintable == 2
    assert len(_naming(caught, "args[0]")) == 1
    assert [e["message"] for e in _events(lines)] == [
        "weights [unprintable: args[0]], step 7",
        "[unprintable: message]",
    ]


def test_excepthook_and_exit_watcher_survive_hostile_values(
    emu: SlackEmulator,
) -> None:
    """An uncaught exception without text, at exit, with a meta tensor reported."""
    code = textwrap.dedent(
        """
        import sys
        import pytorch_pfn_extras as ppe
        import torch
        import ppe_slacklog

        def previous(kind, value, tb):
            print("previous hook saw", kind.__name__, flush=True)

        sys.excepthook = previous

        class Unspeakable(Exception):
            def __str__(self):
                raise RuntimeError("no words")

        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        manager = ppe.training.ExtensionsManager(
            model, optimizer, 2, iters_per_epoch=5
        )
        manager.extend(
            ppe_slacklog.Slack("experiment-progress", interrupted_msg="{default} {x5}")
        )
        with manager.run_iteration():
            ppe.reporting.report({"x5": torch.empty(1, device="meta")})
        raise Unspeakable()
        """
    )
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": emu.token,
        "SLACK_API_URL": emu.base_url,
        "PYTHONWARNINGS": "ignore",
    }
    child = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert child.returncode == 1, child.stderr
    assert "previous hook saw Unspeakable" in child.stdout, child.stderr
    assert "Error in sys.excepthook" not in child.stderr, child.stderr
    texts = thread_texts(emu, CHANNEL)
    assert len(texts) == 2, texts
    assert texts[1].startswith(
        "⚠️ *Training interrupted: uncaught Unspeakable: [unprintable: error]. "
    )
    assert texts[1].endswith(" [unprintable: x5]")
