"""Warnings point at the user's line, and say exactly what was sent.

Template problems of the extension's templates point at the ``Slack(...)``
call; a handler's own templates and its delivery problems (found on the
sender thread) at the ``SlackHandler(...)`` or ``dictConfig`` call; plain
records at the logging call. Each line below that a warning must name ends
in a ``# site: ...`` comment. Names are unique per test: each problem is
reported once per process.
"""

from __future__ import annotations

import logging
import logging.config
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from conftest import make_manager, run_training, slack_dict_config

from ppe_slacklog import Slack, SlackDeliveryWarning, SlackHandler, TemplateWarning
from ppe_slacklog.testing import SlackEmulator

with open(__file__, encoding="utf-8") as _source:
    _LINES = _source.read().splitlines()


def _line(marker: str) -> int:
    """The number of the line of this file ending in ``# site: <marker>``."""
    tag = f"# site: {marker}"
    (number,) = [i for i, text in enumerate(_LINES, 1) if text.endswith(tag)]
    return number


@contextmanager
def _caught() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _of(
    caught: list[warnings.WarningMessage], category: type[Warning]
) -> list[warnings.WarningMessage]:
    return [w for w in caught if issubclass(w.category, category)]


def _where(w: warnings.WarningMessage) -> tuple[str, int]:
    return (w.filename, w.lineno)


def _train(slack: Slack, trigger: Any = (1, "epoch")) -> None:
    manager = make_manager(max_epochs=1, iters_per_epoch=1)
    manager.extend(slack, trigger=trigger)
    run_training(manager, report=lambda m: {"val/cs_loss": 0.5})  # finalize flushes


def test_missing_value_points_at_the_slack_call(slack_env: SlackEmulator) -> None:
    with _caught() as caught:
        slack = Slack("general", msg="loss={val/cs_missing:.3f}")  # site: missing
        _train(slack)
    (w,) = _of(caught, TemplateWarning)
    assert _where(w) == (__file__, _line("missing"))
    assert str(w.message) == (
        "ppe_slacklog: trigger message template: no value named 'val/cs_missing'. "
        "The message was sent with [missing: val/cs_missing] in its place; fix "
        "the template, or report the value before this event."
    )
    assert "loss=[missing: val/cs_missing]" in slack_env.render("general")


def test_malformed_template_is_one_warning_saying_sent_as_written(
    slack_env: SlackEmulator,
) -> None:
    template = "loss={val/cs_absent} bad={"
    with _caught() as caught:
        slack = Slack("general", msg=template)  # site: malformed
        _train(slack)
    (w,) = _of(caught, TemplateWarning)  # not also "no value named ..."
    assert _where(w) == (__file__, _line("malformed"))
    assert str(w.message) == (
        "ppe_slacklog: trigger message template: malformed template "
        f"{template!r}: Single '{{' encountered in format string. The message "
        "was sent as written, nothing substituted; fix the template."
    )
    assert template in slack_env.render("general")


class CallsiteBoom(Exception):
    pass


def _raising(manager: Any, context: Any) -> str:
    raise CallsiteBoom("no text today")


def test_raising_callable_says_default_text_and_marker(
    slack_env: SlackEmulator,
) -> None:
    with _caught() as caught:
        slack = Slack("general", msg=_raising)  # site: callable
        _train(slack)
    (w,) = _of(caught, TemplateWarning)
    assert _where(w) == (__file__, _line("callable"))
    problem = "the callable raised CallsiteBoom: no text today"
    assert str(w.message) == (
        f"ppe_slacklog: trigger message template: {problem}. The default text "
        f"was sent, followed by [missing: {problem}]; fix the callable."
    )
    assert f"Epoch #1\n[missing: {problem}]" in [
        m.text for m in slack_env.messages("general")
    ]


def test_extension_warning_in_a_hook_points_at_the_slack_call(
    slack_env: SlackEmulator,
) -> None:
    def filenames(manager: Any, context: Any) -> list[str]:
        raise CallsiteBoom("no files")

    with _caught() as caught:
        slack = Slack("general", filenames=filenames)  # site: hook
        _train(slack)
    (w,) = [w for w in _of(caught, UserWarning) if "filenames" in str(w.message)]
    assert _where(w) == (__file__, _line("hook"))
    assert str(w.message) == (
        "ppe_slacklog.Slack: the filenames callable raised CallsiteBoom: no "
        "files; no files are uploaded this time."
    )


def test_file_problem_points_at_the_slack_call(slack_env: SlackEmulator) -> None:
    with _caught() as caught:
        slack = Slack("general", filenames=["/nonexistent/cs.png"])  # site: file
        _train(slack)
    (w,) = _of(caught, SlackDeliveryWarning)
    assert _where(w) == (__file__, _line("file"))
    assert "could not attach '/nonexistent/cs.png'" in str(w.message)


def test_handler_template_points_at_the_handler(slack_env: SlackEmulator) -> None:
    handler = SlackHandler("general", msg="x={cs_handler_missing}")  # site: own
    training = logging.getLogger("ppe_slacklog.training")
    training.addHandler(handler)
    training.setLevel(logging.INFO)
    with _caught() as caught:
        _train(Slack("general"))
        assert handler.drain(timeout=10.0)
    (w,) = _of(caught, TemplateWarning)
    assert _where(w) == (__file__, _line("own"))
    assert "no value named 'cs_handler_missing'" in str(w.message)


def test_delivery_problem_on_the_sender_points_at_the_handler(
    emu: SlackEmulator,
) -> None:
    handler = SlackHandler("cs-nowhere", emu.token, base_url=emu.base_url)  # site: h
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    with _caught() as caught:
        logger.warning("lost")
        assert handler.drain(timeout=10.0)
    (w,) = _of(caught, SlackDeliveryWarning)
    assert "channel_not_found" in str(w.message)
    assert _where(w) == (__file__, _line("h"))


def test_own_handler_delivery_problem_points_at_the_slack_call(
    slack_env: SlackEmulator,
) -> None:
    with _caught() as caught:
        slack = Slack("cs-own-nowhere")  # site: own handler
        _train(slack)
    (w,) = [w for w in _of(caught, SlackDeliveryWarning) if "cs-own" in str(w.message)]
    assert "channel_not_found" in str(w.message)
    assert _where(w) == (__file__, _line("own handler"))


def test_delivery_problem_points_at_the_dict_config_call(
    slack_env: SlackEmulator,
) -> None:
    config = slack_dict_config(slack_env, channel="cs-nowhere-either")
    logging.config.dictConfig(config)  # site: dictConfig
    with _caught() as caught:
        logging.getLogger("myproject").warning("lost too")
        logging.getLogger("myproject").handlers[0].flush()
    (w,) = _of(caught, SlackDeliveryWarning)
    assert "channel_not_found" in str(w.message)
    assert _where(w) == (__file__, _line("dictConfig"))


class _Broken:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_plain_record_points_at_the_logging_call(emu: SlackEmulator) -> None:
    handler = SlackHandler("general", emu.token, base_url=emu.base_url)
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    logger.propagate = False  # pytest's own capture handler would raise
    with _caught() as caught:
        logger.warning("value %s", _Broken())  # site: logging call
        assert handler.drain(timeout=10.0)
    (w,) = _of(caught, TemplateWarning)
    assert _where(w) == (__file__, _line("logging call"))
    assert "'args[0]' could not be turned into text" in str(w.message)
