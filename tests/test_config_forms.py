"""JsonFormatter and ConsoleFormatter in every form logging.config knows.

dictConfig's ``()`` factory passes options as keywords; dictConfig's
``class:`` and fileConfig's ``class=`` call ``cls(format, datefmt, style)``
(Python 3.12 adds ``defaults=``), so the options travel in ``format``.
Each test configures a real file handler, logs, and reads the file back.
"""

from __future__ import annotations

import json
import logging
import logging.config
import pathlib
import textwrap
from typing import Any

import pytest

from ppe_slacklog import ConsoleFormatter, JsonFormatter

_ANSI = "\x1b["


def add_marker(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor named by dotted path in the configurations below."""
    event_dict["marker"] = "added"
    return event_dict


def add_second(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict["second"] = event_dict.get("marker")  # runs after add_marker
    return event_dict


_MARKER = f"{__name__}.add_marker"
_SECOND = f"{__name__}.add_second"


def _dict_config(path: pathlib.Path, formatter: dict[str, Any]) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"f": formatter},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(path),
                    "formatter": "f",
                }
            },
            "loggers": {"myproject": {"handlers": ["file"], "level": "INFO"}},
        }
    )


def _log_and_read(path: pathlib.Path) -> str:
    logger = logging.getLogger("myproject")
    logger.warning("disk %s full", "/data")
    for handler in logger.handlers:
        handler.flush()
    return path.read_text()


def _ini(path: pathlib.Path, formatter: str) -> pathlib.Path:
    ini = path.parent / "logging.ini"
    ini.write_text(
        textwrap.dedent(
            f"""\
            [loggers]
            keys=root,myproject
            [handlers]
            keys=file
            [formatters]
            keys=f
            [logger_root]
            handlers=
            [logger_myproject]
            level=INFO
            handlers=file
            qualname=myproject
            [handler_file]
            class=FileHandler
            formatter=f
            args=({str(path)!r},)
            [formatter_f]
            {formatter}
            """
        )
    )
    return ini


def test_json_factory_form_takes_processors_as_keywords(tmp_path):
    out = tmp_path / "events.jsonl"
    _dict_config(
        out,
        {"()": "ppe_slacklog.JsonFormatter", "processors": [_MARKER, _SECOND]},
    )
    line = json.loads(_log_and_read(out))
    assert (line["message"], line["marker"], line["second"]) == (
        "disk /data full",
        "added",
        "added",
    )


def test_json_class_form_takes_processors_in_format(tmp_path):
    out = tmp_path / "events.jsonl"
    _dict_config(
        out,
        {
            "class": "ppe_slacklog.JsonFormatter",
            "format": f"processors={_MARKER}, {_SECOND}",
        },
    )
    line = json.loads(_log_and_read(out))
    assert (line["level"], line["marker"], line["second"]) == (
        "warning",
        "added",
        "added",
    )


def test_json_class_form_with_validate_key(tmp_path):
    # dictConfig passes validate as a fourth positional argument.
    out = tmp_path / "events.jsonl"
    _dict_config(
        out,
        {
            "class": "ppe_slacklog.JsonFormatter",
            "format": f"processors={_MARKER}",
            "validate": True,
        },
    )
    assert json.loads(_log_and_read(out))["marker"] == "added"


def test_json_file_config_form(tmp_path):
    out = tmp_path / "events.jsonl"
    ini = _ini(out, f"class=ppe_slacklog.JsonFormatter\nformat=processors={_MARKER}")
    logging.config.fileConfig(ini, disable_existing_loggers=False)
    line = json.loads(_log_and_read(out))
    assert (line["logger"], line["marker"]) == ("myproject", "added")


def test_console_factory_form_takes_colors_as_keyword(tmp_path):
    out = tmp_path / "console.log"
    _dict_config(out, {"()": "ppe_slacklog.ConsoleFormatter", "colors": True})
    text = _log_and_read(out)
    assert "disk /data full" in text and _ANSI in text


def test_console_class_form_takes_colors_in_format(tmp_path):
    out = tmp_path / "console.log"
    # Under pytest stderr is no terminal: colours appear only when asked for.
    _dict_config(
        out, {"class": "ppe_slacklog.ConsoleFormatter", "format": "colors=true"}
    )
    text = _log_and_read(out)
    assert "disk /data full" in text and _ANSI in text


def test_console_file_config_form(tmp_path):
    out = tmp_path / "console.log"
    ini = _ini(out, "class=ppe_slacklog.ConsoleFormatter\nformat=colors=true")
    logging.config.fileConfig(ini, disable_existing_loggers=False)
    text = _log_and_read(out)
    assert "disk /data full" in text and "myproject" in text and _ANSI in text


def test_console_colors_false_in_format_has_no_escape_codes(tmp_path):
    out = tmp_path / "console.log"
    _dict_config(
        out, {"class": "ppe_slacklog.ConsoleFormatter", "format": "colors=false"}
    )
    text = _log_and_read(out)
    assert "disk /data full" in text and _ANSI not in text


@pytest.mark.parametrize(
    ("formatter", "message"),
    [
        (
            {"class": "ppe_slacklog.ConsoleFormatter", "format": "%(message)s"},
            "no format string",
        ),
        (
            {"class": "ppe_slacklog.ConsoleFormatter", "format": "colour=true"},
            "'colors'",
        ),
        (
            {"class": "ppe_slacklog.ConsoleFormatter", "format": "colors=maybe"},
            "'maybe'",
        ),
        ({"class": "ppe_slacklog.JsonFormatter", "datefmt": "%H:%M"}, "datefmt"),
        (
            {"class": "ppe_slacklog.JsonFormatter", "format": "processors=no.such.fn"},
            "no.such.fn",
        ),
        (
            {
                "()": "ppe_slacklog.ConsoleFormatter",
                "colors": True,
                "format": "colors=false",
            },
            "both",
        ),
    ],
)
def test_options_that_cannot_apply_are_refused(tmp_path, formatter, message):
    with pytest.raises(ValueError, match="formatter") as info:
        _dict_config(tmp_path / "out.log", formatter)
    assert message in str(info.value.__cause__)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        ConsoleFormatter(None, None, "%", True, False)  # type: ignore[misc]
    assert (
        JsonFormatter(None, None, "%", True)
        .format(logging.makeLogRecord({"msg": "ok"}))
        .startswith("{")
    )
