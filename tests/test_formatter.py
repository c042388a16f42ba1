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
