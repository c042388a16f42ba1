"""Templates see what ppe's templates see: the live manager, at the event.

ppe formats its templates with the live ``ExtensionsManager`` when the event
happens. Here a template that reads only what the record's snapshot holds is
rendered later by the sender (the training thread does not wait for it);
everything else (callables, any other use of ``manager``, ``context``, the
error event) is rendered at the event. Slack answers slowly in these tests,
so a rendering done later would read later values and show it.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import make_manager, run_training, thread_texts

import ppe_slacklog
from ppe_slacklog import SlackHandler
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"
pytestmark = pytest.mark.slack_emulator(rate_limits=False, share_delay=0)


def _thread_texts(emu: SlackEmulator) -> list[str]:
    top = emu.top_level(CHANNEL)
    assert len(top) == 1, [m.text for m in top]
    return thread_texts(emu, CHANNEL, top[0].ts)


def _lines(emu: SlackEmulator) -> list[str]:
    """Every line posted in the run's thread (batched records count one by one)."""
    return [line for text in _thread_texts(emu) for line in text.split("\n")]


def _changing_lr(manager: Any) -> dict[str, Any]:
    """Sets this iteration's learning rate, as a scheduler would."""
    manager.optimizers["main"].param_groups[0]["lr"] = 0.1 * (manager.iteration + 1)
    return {"loss": 0.5}


def test_format_string_reads_the_live_manager_at_the_event(
    slack_env: SlackEmulator, tmp_path: Path
) -> None:
    slack_env.set_latency(0.3)  # a backlog: the sender renders late
    manager = make_manager(max_epochs=4, iters_per_epoch=1, out_dir=str(tmp_path))
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL,
            msg="e{manager.epoch} "
            "lr={manager.optimizers[main].param_groups[0][lr]:.1f} "
            "out={manager._out}",
        ),
        trigger=(1, "epoch"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no TemplateWarning: every name exists
        run_training(manager, _changing_lr)

    lines = [line for line in _lines(slack_env) if line.startswith("e")]
    assert lines == [f"e{e} lr={0.1 * e:.1f} out={tmp_path}" for e in (1, 2, 3, 4)]


def test_callable_gets_the_live_manager(slack_env: SlackEmulator) -> None:
    slack_env.set_latency(0.3)
    seen: list[str] = []

    def msg(manager: Any, context: Any) -> str:
        seen.append(type(manager).__name__)
        lr = manager.optimizers["main"].param_groups[0]["lr"]
        return f"it {manager.iteration} lr {lr:.1f} in {manager._out}"

    manager = make_manager(max_epochs=3, iters_per_epoch=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg=msg), trigger=(1, "epoch"))
    run_training(manager, _changing_lr)

    assert seen == ["ExtensionsManager"] * 3
    lines = [line for line in _lines(slack_env) if line.startswith("it ")]
    assert lines == [f"it {i} lr {0.1 * i:.1f} in result" for i in (1, 2, 3)]


def test_context_is_read_at_the_event(slack_env: SlackEmulator) -> None:
    """ppe's own test changes ``context`` between events without waiting."""
    slack_env.set_latency(0.3)
    context = SimpleNamespace(foo="?")

    def report(manager: Any) -> dict[str, Any]:
        context.foo = f"value {manager.iteration + 1}"
        return {}

    manager = make_manager(max_epochs=3, iters_per_epoch=1)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL, msg="{manager.iteration}: {context.foo}", context=context
        ),
        trigger=(1, "epoch"),
    )
    run_training(manager, report)

    lines = [line for line in _lines(slack_env) if line[:1].isdigit()]
    assert lines == [f"{i}: value {i}" for i in (1, 2, 3)]


def test_filename_templates_read_the_live_manager(
    slack_env: SlackEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ppe's files test: ``{manager._out}/abc`` is a file in the output directory."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "result"
    out.mkdir()
    (out / "abc").write_text("plot")
    (tmp_path / "file_1").write_text("one")
    manager = make_manager(max_epochs=1, iters_per_epoch=1, out_dir=str(out))
    manager.extend(
        ppe_slacklog.Slack(CHANNEL, filenames=["file_1", "{manager._out}/abc"]),
        trigger=(1, "epoch"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_training(manager)
    assert sorted(f.name for f in slack_env.files) == ["abc", "file_1"]


def test_snapshot_only_template_renders_the_event_values_later(
    slack_env: SlackEmulator,
) -> None:
    """The common case is left to the sender: same text, values of the event."""
    slack_env.set_latency(0.3)
    manager = make_manager(max_epochs=5, iters_per_epoch=1)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL, msg="it {manager.iteration} ep {manager.epoch_detail} loss {loss}"
        ),
        trigger=(1, "epoch"),
    )
    run_training(manager, lambda m: {"loss": (m.iteration + 1) / 10})
    lines = [line for line in _lines(slack_env) if line.startswith("it ")]
    assert lines == [f"it {i} ep {float(i)} loss {i / 10}" for i in range(1, 6)]


def test_queue_handler_keeps_live_values_and_the_traceback(
    emu: SlackEmulator,
) -> None:
    """stdlib's QueueHandler -> QueueListener -> SlackHandler, as often configured.

    ``QueueHandler.prepare`` drops ``exc_info`` and the listener renders on
    its own thread, later: the error message still has its traceback, and a
    template reading the live manager still shows the event's values.
    """
    slack = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, slack)
    logger = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
    logger.addHandler(logging.handlers.QueueHandler(q))
    logger.setLevel(logging.INFO)
    listener.start()
    try:
        manager = make_manager(max_epochs=4, iters_per_epoch=1)
        manager.extend(
            ppe_slacklog.Slack(
                CHANNEL, msg="lr={manager.optimizers[main].param_groups[0][lr]:.1f}"
            ),
            trigger=(1, "epoch"),
        )
        with pytest.raises(ValueError, match="boom"):
            run_training(manager, _changing_lr, fail_at=3)
    finally:
        listener.stop()
        slack.flush()
    texts = _thread_texts(emu)
    assert [t for t in texts if t.startswith("lr=")] == ["lr=0.1", "lr=0.2"]
    error = texts[-1]
    assert "ValueError: boom" in error
    assert "Traceback:" in error and "run_training" in error


def test_handler_templates_see_the_snapshot(emu: SlackEmulator) -> None:
    """A handler's own template never sees the live manager: it says so clearly."""
    logging.getLogger(ppe_slacklog.DEFAULT_LOGGER).addHandler(
        SlackHandler(
            CHANNEL, emu.token, base_url=emu.base_url, msg="lr={manager.optimizers}"
        )
    )
    logging.getLogger(ppe_slacklog.DEFAULT_LOGGER).setLevel(logging.INFO)
    manager = make_manager(max_epochs=1, iters_per_epoch=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL), trigger=(1, "epoch"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_training(manager)
    assert "lr=[missing: manager.optimizers]" in _thread_texts(emu)
    assert any("manager.optimizers" in str(w.message) for w in caught)


def test_record_carries_the_snapshot_not_the_manager() -> None:
    """Other sinks get plain values: the live manager is never on the record."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    manager = make_manager(max_epochs=1, iters_per_epoch=1)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL, msg="{manager.optimizers[main].param_groups[0][lr]}"
        ),
        trigger=(1, "epoch"),
    )
    run_training(manager)
    trigger = next(r for r in records if r.__dict__["ppe_event"] == "trigger")
    assert trigger.__dict__["ppe_text"] == "0.1"
    assert type(trigger.__dict__["ppe_manager"]).__name__ == "ManagerSnapshot"
    assert not any(
        type(v).__name__ == "ExtensionsManager" for v in trigger.__dict__.values()
    )


def test_events_nobody_else_sees_become_records_on_the_sender(
    slack_env: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the extension's own handler listening, the record is made later.

    The texts are those of the events all the same; a handler added
    mid-run (a console, say) gets every event from then on, at once.
    """
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # pytest's capture listens too
    root.setLevel(logging.INFO)  # what a later console will want to see
    slack_env.set_latency(0.3)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    def report(manager: Any) -> dict[str, Any]:
        if manager.iteration == 2:
            root.addHandler(Keep())
        return {"loss": (manager.iteration + 1) / 10}

    manager = make_manager(max_epochs=4, iters_per_epoch=1)
    manager.extend(
        ppe_slacklog.Slack(CHANNEL, msg="it {manager.iteration} loss {loss}"),
        trigger=(1, "epoch"),
    )
    run_training(manager, report)

    lines = [line for line in _lines(slack_env) if line.startswith("it ")]
    assert lines == [f"it {i} loss {i / 10}" for i in (1, 2, 3, 4)]
    assert [(r.__dict__["ppe_event"], r.__dict__["iteration"]) for r in seen] == [
        ("trigger", 3),
        ("trigger", 4),
        ("end", 4),
    ]


@pytest.mark.parametrize("msg", ["   ", "{note}", lambda m, c: " \n "])
def test_templates_that_render_blank_post_nothing(
    slack_env: SlackEmulator, msg: Any
) -> None:
    """Slack refuses (or shows as empty) a blank text: nothing is posted for it."""
    manager = make_manager(max_epochs=2, iters_per_epoch=1)
    manager.extend(
        ppe_slacklog.Slack(CHANNEL, msg=msg, start_msg=None, end_msg=None),
        trigger=(1, "epoch"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # slack_sdk warns of a blank text
        run_training(manager, lambda m: {"note": "  "})
    assert slack_env.messages(CHANNEL) == []


def test_a_held_start_shows_the_manager_as_ppe_would_at_initialize(
    slack_env: SlackEmulator,
) -> None:
    """ppe's `while not manager.stop_trigger` starts the extensions early.

    The start then waits for the first iteration, but a template reading the
    live manager or context still shows them as they were at initialize,
    and the start is the thread's first message.
    """
    context = SimpleNamespace(phase="init")

    def report(manager: Any) -> dict[str, Any]:
        context.phase = "training"
        manager.optimizers["main"].param_groups[0]["lr"] = 0.5
        return {}

    manager = make_manager(max_epochs=3, iters_per_epoch=1)
    manager.extend(
        ppe_slacklog.Slack(
            CHANNEL,
            msg="it {manager.iteration}",
            start_msg="lr={manager.optimizers[main].param_groups[0][lr]} "
            "phase={context.phase}",
            context=context,
        ),
        trigger=(1, "iteration"),
    )
    run_training(manager, report)
    texts = _thread_texts(slack_env)
    assert texts[0] == "lr=0.1 phase=init"
    assert [line for line in _lines(slack_env) if line.startswith("it ")] == [
        "it 1",
        "it 2",
        "it 3",
    ]
