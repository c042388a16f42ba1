"""SlackFormatter: records of every kind to Slack text."""

from __future__ import annotations

import logging

from ppe_slacklog import SlackFormatter
from ppe_slacklog.events import ManagerSnapshot, event_extra


def _event(
    kind: str, template: object = "{default}", **kw: object
) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "ppe_slacklog.training", "msg": "m"})
    record.__dict__.update(
        event_extra(
            kind=kind,  # type: ignore[arg-type]
            run_id="r",
            snapshot=ManagerSnapshot(epoch=2, observation={"loss": 0.5}),
            context=None,
            template=template,
        )
    )
    record.__dict__.update(kw)
    return record


def test_level_markers_and_logger_name() -> None:
    fmt = SlackFormatter()
    for level, marker in [(10, "🔍"), (20, "ℹ️"), (30, "⚠️"), (40, "❌"), (50, "🔥")]:
        record = logging.makeLogRecord({"name": "lib", "levelno": level, "msg": "x"})
        assert fmt.format(record) == f"{marker} *lib* x"
    custom = logging.makeLogRecord({"name": "lib", "levelno": 35, "msg": "x"})
    assert fmt.format(custom).startswith("⚠️")


def test_args_escaped_numbers_keep_format() -> None:
    record = logging.makeLogRecord(
        {
            "name": "lib",
            "levelno": 30,
            "msg": "%s took %.1fs (%d)",
            "args": ("<x>", 1.25, 3),
        }
    )
    assert SlackFormatter().format(record) == "⚠️ *lib* &lt;x&gt; took 1.2s (3)"


def test_mismatched_args_do_not_raise() -> None:
    record = logging.makeLogRecord(
        {"name": "lib", "levelno": 30, "msg": "%d items", "args": ("many",)}
    )
    assert "%d items" in SlackFormatter().format(record)


def test_structlog_event_dict() -> None:
    record = logging.makeLogRecord(
        {
            "name": "myapp",
            "levelno": 30,
            "msg": {
                "event": "disk_full",
                "path": "/data",
                "free_gb": 1.5,
                "level": "warning",
            },
        }
    )
    assert (
        SlackFormatter().format(record)
        == "⚠️ *myapp* disk_full path='/data' free_gb=1.5"
    )


def test_training_event_templates_and_overrides() -> None:
    assert SlackFormatter().format(_event("trigger")) == "Epoch #2"
    assert SlackFormatter().render(_event("trigger", None)) is None
    override = SlackFormatter(msg="loss {loss}")
    assert override.format(_event("trigger", None)) == "loss 0.5"
    assert SlackFormatter(end_msg=None).render(_event("end")) is None


def test_manager_fields_are_escaped_on_every_path() -> None:
    record = _event(
        "trigger", "{manager.out} {manager.observation[loss]} {manager.epoch:03d}"
    )
    record.__dict__["ppe_manager"] = record.__dict__["ppe_manager"]._replace(
        out="runs/<a&b>", observation={"loss": "<x>"}
    )
    assert SlackFormatter().format(record) == "runs/&lt;a&amp;b&gt; &lt;x&gt; 002"


def test_interrupted_event_default_and_reason_template() -> None:
    fmt = SlackFormatter()
    record = _event("interrupted", reason="SIGTERM received", elapsed_time=3725.0)
    record.__dict__["ppe_manager"] = ManagerSnapshot(
        epoch=2, iteration=40, elapsed_time=3725.0
    )
    text = fmt.format(record)
    assert text.startswith("⚠️ *Training interrupted: SIGTERM received.")
    assert text.endswith("Stopped at epoch 2, iteration 40, after 1:02:05.")
    custom = SlackFormatter(interrupted_msg="stopped: {reason} <{manager.epoch}>")
    assert custom.format(record) == "stopped: SIGTERM received <2>"
    assert SlackFormatter(interrupted_msg=None).render(record) is None


def test_resumed_start_says_where() -> None:
    record = _event("start", resumed=True)
    record.__dict__["ppe_manager"] = ManagerSnapshot(epoch=3, iteration=300)
    text = SlackFormatter().format(record)
    assert text.startswith("🔁 *Training resumed from epoch 3, iteration 300!")
    assert "Command: `" in text


def test_ranks_are_named_where_it_matters() -> None:
    fmt = SlackFormatter()
    where = {"world_size": 2, "host": "node<7>"}
    trigger_0 = _event("trigger", template="loss {loss}", rank=0, **where)
    trigger_1 = _event("trigger", template="loss {loss}", rank=1, **where)
    error_0 = _event("error", template="failed", rank=0, **where)
    assert fmt.format(trigger_0) == "loss 0.5"
    assert fmt.format(trigger_1) == "`rank 1 of 2 on node&lt;7&gt;`\nloss 0.5"
    assert fmt.format(error_0) == "`rank 0 of 2 on node&lt;7&gt;`\nfailed"
    single = _event("error", template="failed", rank=0, world_size=1)
    assert fmt.format(single) == "failed"


def test_manager_fields_render_escaped_or_plain() -> None:
    fmt = SlackFormatter()
    snapshot = ManagerSnapshot(
        epoch=2, iteration=7, out="<out>", observation={"note": "<b>"}
    )
    for template, expected in [
        ("it {manager.iteration} ep {manager.epoch}", "it 7 ep 2"),
        ("{manager.out} {manager.epoch}", "&lt;out&gt; 2"),
        ("{manager.observation[note]}", "&lt;b&gt;"),
    ]:
        record = _event("trigger", template, ppe_manager=snapshot)
        assert fmt.format(record) == expected, template


def test_a_stopped_run_is_never_called_finished() -> None:
    """An alerts handler's own end_msg is not used for a loop that ended early."""
    record = logging.makeLogRecord(
        {
            "ppe_event": "stopped",
            "epoch": 3,
            "iteration": 3,
            "reason": "the process exited with no error seen",
        }
    )
    alerts = SlackFormatter(end_msg="✅ Run finished after {manager.epoch} epochs")
    assert alerts.format(record).startswith("⏹️ *Training stopped at epoch 3")
    own = SlackFormatter(end_msg="finished", stopped_msg="stopped at {manager.epoch}")
    assert own.format(record) == "stopped at 3"
