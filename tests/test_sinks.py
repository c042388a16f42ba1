"""JSON lines and console sinks, structlog in and out."""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
import structlog
import torch
from conftest import make_manager, run_training

import ppe_slacklog
from ppe_slacklog import (
    ConsoleFormatter,
    EventFilter,
    JsonFormatter,
    ProcessorFilter,
    SlackHandler,
)
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"


class Unserialisable:
    def __repr__(self) -> str:
        return "<Unserialisable context>"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _jsonl_training(path: Path, **ext_kw: Any) -> list[dict[str, Any]]:
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ppe_slacklog.training")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # file only: no Slack for this test
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL, **ext_kw))
    with pytest.raises(ValueError):
        run_training(
            manager,
            lambda m: {
                "loss": torch.tensor(0.25),
                "acc": torch.tensor([0.5]),
                "weights": torch.zeros(50, 50),
                "nan": float("nan"),
                "note": "a\nb",
            },
            fail_at=4,
        )
    handler.close()
    logger.removeHandler(handler)
    logger.propagate = True
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_json_lines_for_a_training(tmp_path: Path) -> None:
    rows = _jsonl_training(tmp_path / "events.jsonl", context=Unserialisable())
    # The reported NaN is an alert too (issue 12), before the error's record.
    assert [r["ppe_event"] for r in rows] == ["start", "trigger", "nonfinite", "error"]
    trigger = rows[1]
    assert trigger["observations"] == {
        "loss": 0.25,
        "acc": 0.5,
        "weights": "<Tensor shape=(50, 50)>",
        "nan": "nan",
        "note": "a\nb",
    }
    assert (trigger["epoch"], trigger["iteration"]) == (1, 2)
    assert isinstance(trigger["elapsed_time"], float)
    assert trigger["filenames"] == []
    assert trigger["context"] == "<Unserialisable context>"
    assert trigger["level"] == "info" and trigger["logger"] == "ppe_slacklog.training"
    assert trigger["timestamp"].endswith("+00:00")
    assert trigger["message"] == trigger["message"].strip()
    nonfinite = rows[2]
    assert nonfinite["level"] == "warning"
    assert nonfinite["alert"]["key"] == "nan" and nonfinite["alert"]["value"] == "nan"
    error = rows[3]
    assert error["level"] == "error"
    assert (error["exc_type"], error["exc_message"]) == ("ValueError", "boom")
    assert 'raise ValueError("boom")' in error["traceback"]
    assert len({r["run_id"] for r in rows}) == 1
    assert not any(k.startswith("ppe_") and k != "ppe_event" for r in rows for k in r)


def test_json_lines_load_into_pandas(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    path = tmp_path / "events.jsonl"
    _jsonl_training(path)
    frame = pandas.read_json(path, lines=True)
    assert list(frame["ppe_event"]) == ["start", "trigger", "nonfinite", "error"]
    losses = pandas.json_normalize(frame["observations"].dropna().tolist())
    assert losses["loss"].dtype.kind == "f"


def test_json_never_raises_never_breaks_a_line() -> None:
    fmt = JsonFormatter()
    records = [
        logging.makeLogRecord({"name": "x", "msg": "%s %s", "args": ("<a>", {1, 2})}),
        logging.makeLogRecord({"name": "x", "msg": BrokenRepr()}),
        logging.makeLogRecord(
            {"name": "x", "msg": "m", "ppe_event": "trigger", "context": BrokenRepr()}
        ),
        logging.makeLogRecord({"name": "x", "msg": "%d", "args": ("not a number",)}),
        logging.makeLogRecord({"name": "x", "msg": "multi\nline", "inf": math.inf}),
    ]
    for record in records:
        line = fmt.format(record)
        assert "\n" not in line
        assert isinstance(json.loads(line), dict)


def test_console_formatter_is_readable(slack_env: SlackEmulator) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ConsoleFormatter(colors=False))
    logging.getLogger("ppe_slacklog.training").addHandler(handler)
    logging.getLogger("ppe_slacklog.training").setLevel(logging.INFO)
    manager = make_manager(max_epochs=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL))
    run_training(manager, lambda m: {"loss": torch.tensor(0.5)})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert "training started" in lines[0] and "ppe_event=start" in lines[0]
    assert "epoch 1, iteration 2: loss=0.5" in lines[1]
    assert "tensor(" not in stream.getvalue()
    assert "[info" in lines[1] and "ppe_slacklog.training" in lines[1]


def _structlog_to_stdlib() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def test_structlog_in_reaches_slack_readably(emu: SlackEmulator) -> None:
    _structlog_to_stdlib()
    try:
        handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
        logging.getLogger("myapp").addHandler(handler)
        log = structlog.get_logger("myapp")
        log.warning("disk_full", path="/data", free_gb=1.5, owner="<!here>")
        assert handler.drain(timeout=5.0)
    finally:
        structlog.reset_defaults()
    (message,) = emu.messages(CHANNEL)
    assert message.text == (
        "⚠️ *myapp* disk_full path='/data' free_gb=1.5 owner='&lt;!here&gt;'"
    )


def test_structlog_in_reaches_json(tmp_path: Path) -> None:
    _structlog_to_stdlib()
    path = tmp_path / "app.jsonl"
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("myapp").addHandler(handler)
    try:
        structlog.get_logger("myapp").error("job_failed", job=7, exc_info=False)
    finally:
        structlog.reset_defaults()
        handler.close()
    (row,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (row["message"], row["job"], row["level"]) == ("job_failed", 7, "error")


def test_structlog_out_enriches_slack_and_json(
    slack_env: SlackEmulator, tmp_path: Path
) -> None:
    def add_run_owner(_: Any, __: str, event_dict: Any) -> Any:
        event_dict["owner"] = "alice"
        return event_dict

    path = tmp_path / "events.jsonl"
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(JsonFormatter())
    slack = SlackHandler(CHANNEL, slack_env.token)
    logger = logging.getLogger("ppe_slacklog.training")
    logger.addFilter(ProcessorFilter([add_run_owner, "ppe_slacklog.add_host"]))
    for h in (file_handler, slack):
        logger.addHandler(h)
    logger.setLevel(logging.INFO)
    manager = make_manager(max_epochs=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="epoch {manager.epoch} by {owner}"))
    run_training(manager)
    file_handler.close()
    texts = [m.text for m in slack_env.messages(CHANNEL)]
    assert texts[1] == "epoch 1 by alice"  # used in the template: no footer
    assert texts[0].endswith("_owner: alice · host: " + _host() + "_")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["owner"] == "alice" and r["host"] == _host() for r in rows)


def _host() -> str:
    import socket

    return socket.gethostname()


def test_event_filter_validates_kinds() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        EventFilter(events=["finish"])
    plain = logging.makeLogRecord({"msg": "x"})
    assert EventFilter(others=True).filter(plain)
    assert not EventFilter().filter(plain)


def test_processor_errors_do_not_lose_the_record() -> None:
    def broken(_: Any, __: str, event_dict: Any) -> Any:
        raise KeyError("nope")

    record = logging.makeLogRecord({"msg": "kept"})
    assert ProcessorFilter([broken]).filter(record)
    assert "KeyError" in record.ppe_extra["enrich_error"]


def test_json_survives_surrogates_nan_from_processors_and_exc_instances() -> None:
    def add_nan(_: Any, __: str, event_dict: Any) -> Any:
        event_dict["score"] = float("nan")
        return event_dict

    fmt = JsonFormatter(processors=[add_nan])
    record = logging.makeLogRecord({"name": "x", "msg": "file \udcff\u2028name"})
    line = fmt.format(record)
    line.encode("utf-8")  # writable to a UTF-8 file
    assert len(line.splitlines()) == 1
    assert json.loads(line)["score"] == "nan"
    try:
        raise KeyError("k")
    except KeyError as exc:
        caught = exc
    record = logging.makeLogRecord(
        {"name": "x", "msg": {"event": "e", "exc_info": caught}}
    )
    record._logger = None  # as structlog's wrap_for_formatter leaves it
    record._name = "error"
    row = json.loads(JsonFormatter().format(record))
    assert row["exc_type"] == "KeyError"


def test_json_lines_of_a_resumed_run_and_its_interruption(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ppe_slacklog.training")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    manager = make_manager(max_epochs=3)
    ext = ppe_slacklog.Slack(CHANNEL)
    manager.extend(ext)
    ext.load_state_dict({"run_id": "saved-run"})
    manager.iteration = 2
    with manager.run_iteration():
        pass
    ext._interrupted(manager, "SIGTERM received")  # what the exit hook calls
    ext.finalize(manager)  # stops watching the run, too
    handler.close()
    logger.removeHandler(handler)
    logger.propagate = True
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["ppe_event"] for r in rows] == ["start", "interrupted", "end"]
    assert rows[0]["resumed"] is True and rows[0]["iteration"] == 2
    assert rows[1]["reason"] == "SIGTERM received"
    assert rows[1]["level"] == "warning"
    assert "resumed" not in rows[2] and "rank" not in rows[1]
    assert {r["run_id"] for r in rows} == {"saved-run"}
