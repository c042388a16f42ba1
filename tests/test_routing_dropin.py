"""When the drop-in ``Slack`` posts by itself, and what it says when it does not.

Each scenario is a real ``ExtensionsManager`` training with Slack played by
the emulator: handlers on ancestors of the training logger only observe the
events; handlers on the training logger itself (or ``propagate=False``)
decide where they go, and the extension says so once; a reachable
SlackHandler posts each event once.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import make_manager, run_python, run_training, thread_texts

import ppe_slacklog
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"
TRAINING = "ppe_slacklog.training"

pytestmark = pytest.mark.slack_emulator(rate_limits=False, share_delay=0)


class Observer(logging.Handler):
    """Keeps the training events it sees (as a console or file handler would)."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        kind = getattr(record, "ppe_event", None)
        if kind is not None:
            self.kinds.append(kind)


def _train(max_epochs: int = 2, **kw: Any) -> list[warnings.WarningMessage]:
    """Trains with the drop-in; returns the warnings the library gave."""
    manager = make_manager(max_epochs=max_epochs, iters_per_epoch=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager.extend(ppe_slacklog.Slack(CHANNEL, msg="ep {manager.epoch}", **kw))
        run_training(manager)
    return [w for w in caught if "ppe_slacklog" in str(w.message)]


def _texts(emu: SlackEmulator) -> list[str]:
    """The run's thread as ppe would post it (the live card's state and chart aside)."""
    if not emu.messages(CHANNEL):
        return []
    return thread_texts(emu, CHANNEL)


@pytest.fixture
def root_level() -> Iterator[None]:
    """Restores the root logger's level and handlers after the test."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    root.setLevel(level)
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()


@pytest.mark.parametrize("level", [None, logging.INFO], ids=["default", "INFO"])
def test_an_observer_on_the_parent_logger_leaves_slack_on(
    slack_env: SlackEmulator, level: int | None
) -> None:
    parent = logging.getLogger("ppe_slacklog")
    observer = Observer()
    parent.addHandler(observer)
    if level is not None:
        parent.setLevel(level)
    told = _train()
    assert told == [], [str(w.message) for w in told]
    texts = _texts(slack_env)
    assert len(texts) == 4, texts
    assert texts[0].startswith("🏃 *Training started!")
    assert texts[1:3] == ["ep 1", "ep 2"]
    assert texts[3].startswith("✅ *Training finished!")
    (card,) = slack_env.top_level(CHANNEL)  # one thread
    assert card.blocks is not None
    assert card.blocks[0]["text"]["text"] == "✅ Finished · epoch 2/2"
    # An observer sees what its logger's level lets through, as anywhere in
    # logging (a WARNING console is not flooded); Slack gets every event.
    expected = ["start", "trigger", "trigger", "end"] if level == logging.INFO else []
    assert observer.kinds == expected


def test_a_handler_on_the_training_logger_routes_events_and_says_so_once(
    slack_env: SlackEmulator,
) -> None:
    observer = Observer()
    training = logging.getLogger(TRAINING)
    training.addHandler(observer)
    training.setLevel(logging.INFO)
    told = _train()
    assert slack_env.messages() == []
    assert observer.kinds == ["start", "trigger", "trigger", "end"]
    (warning,) = told
    text = str(warning.message)
    assert f"'{TRAINING}'" in text
    assert repr(observer) in text  # which handlers
    assert "add a ppe_slacklog.SlackHandler" in text  # how to change it
    assert "propagate=False" in text  # how to keep it, quietly
    assert "set its level to INFO" not in text
    # The warning names what was wrong at this extension's start; the
    # configuration is the same for the next one, and said once for each.
    assert len(_train()) == 1


def test_a_logger_that_does_not_propagate_and_has_no_handler_is_named(
    slack_env: SlackEmulator,
) -> None:
    training = logging.getLogger(TRAINING)
    training.propagate = False
    training.setLevel(logging.INFO)
    (warning,) = _train()
    assert "does not propagate and has no handlers" in str(warning.message)
    assert "propagate=True" in str(warning.message)
    assert slack_env.messages() == []


def test_console_only_routing_is_quiet(slack_env: SlackEmulator) -> None:
    """``propagate=False`` plus handlers: the documented way to say "no Slack"."""
    observer = Observer()
    training = logging.getLogger(TRAINING)
    training.addHandler(observer)
    training.setLevel(logging.INFO)
    training.propagate = False
    assert _train() == []
    assert slack_env.messages() == []
    assert observer.kinds == ["start", "trigger", "trigger", "end"]


def test_a_slack_handler_on_the_root_posts_each_event_once(
    slack_env: SlackEmulator, root_level: None
) -> None:
    root = logging.getLogger()
    root.addHandler(ppe_slacklog.SlackHandler(CHANNEL, rate_limit=None))
    root.setLevel(logging.INFO)
    assert _train() == []
    texts = _texts(slack_env)
    assert len(texts) == 4, texts
    assert texts[1:3] == ["ep 1", "ep 2"]
    assert len(slack_env.top_level(CHANNEL)) == 1


def test_when_the_level_is_the_cause_the_fix_is_exact(
    slack_env: SlackEmulator, root_level: None
) -> None:
    root = logging.getLogger()
    root.addHandler(ppe_slacklog.SlackHandler(CHANNEL, rate_limit=None))
    root.setLevel(logging.WARNING)
    (warning,) = _train()
    text = str(warning.message)
    assert "its level is WARNING (set on the logger 'root')" in text
    assert "start, trigger, end, stopped events are dropped" in text
    assert f"logging.getLogger('{TRAINING}').setLevel(logging.INFO)" in text
    assert "posts nothing" not in text
    assert _texts(slack_env) == []


def test_logging_disable_is_named_as_the_cause(slack_env: SlackEmulator) -> None:
    logging.disable(logging.INFO)
    try:
        (warning,) = _train()
    finally:
        logging.disable(logging.NOTSET)
    assert "logging.disable(INFO) is in effect" in str(warning.message)
    assert "logging.disable(logging.NOTSET)" in str(warning.message)


def test_without_a_token_an_observer_does_not_hide_the_missing_token(
    emu: SlackEmulator,
) -> None:
    """ppe raises without a token; an observer on an ancestor changes nothing."""
    logging.getLogger("ppe_slacklog").addHandler(Observer())
    with pytest.raises(RuntimeError, match="SLACK_BOT_TOKEN"):
        ppe_slacklog.Slack(CHANNEL)


def test_a_basic_config_console_stays_as_quiet_as_ppe(slack_env: SlackEmulator) -> None:
    """basicConfig() (root at WARNING): the events go to Slack, not to stderr."""
    console = io.StringIO()
    root = logging.getLogger()
    root.addHandler(logging.StreamHandler(console))
    root.setLevel(logging.WARNING)
    assert _train() == []
    assert len(_texts(slack_env)) == 4
    assert console.getvalue() == ""
    assert not logging.getLogger(TRAINING).isEnabledFor(logging.INFO)


def test_a_handler_set_to_info_on_the_parent_is_told_why_it_sees_nothing(
    slack_env: SlackEmulator,
) -> None:
    parent = logging.getLogger("ppe_slacklog")
    observer = Observer()
    observer.setLevel(logging.INFO)
    parent.addHandler(observer)
    told = _train()
    assert len(_texts(slack_env)) == 4  # Slack gets every event
    assert observer.kinds == []  # the logger's level (root's WARNING) drops them
    (warning,) = told
    text = str(warning.message)
    assert "on the logger 'ppe_slacklog' is set to INFO" in text
    assert "logging.getLogger('ppe_slacklog').setLevel(logging.INFO)" in text


def test_dictconfig_during_the_run_loses_nothing(slack_env: SlackEmulator) -> None:
    """dictConfig disables the loggers it does not name: the drop-in goes on."""
    result = run_python(
        slack_env,
        """
        import logging.config, warnings, pytorch_pfn_extras as ppe, torch
        import ppe_slacklog
        warnings.simplefilter("always")
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        manager = ppe.training.ExtensionsManager(model, optimizer, 4, iters_per_epoch=1)
        extension = ppe_slacklog.Slack("experiment-progress", msg="ep {manager.epoch}")
        manager.extend(extension)
        while not manager.stop_trigger:
            with manager.run_iteration():
                if manager.iteration == 2:
                    logging.config.dictConfig({"version": 1, "root": {"level": "INFO"}})
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for text in _texts(slack_env) for line in text.split("\n")]
    assert [line for line in lines if line.startswith("ep ")] == [
        "ep 1",
        "ep 2",
        "ep 3",
        "ep 4",
    ]
    assert "Training finished" in _texts(slack_env)[-1]
    assert result.stderr.count("logging.config disabled the logger") == 1, result.stderr
