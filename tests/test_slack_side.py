"""Slack-side behaviour of real runs: joining channels, broadcasting failures."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import pytest
from conftest import make_manager, run_training

import ppe_slacklog
from ppe_slacklog import SlackDeliveryWarning, SlackHandler
from ppe_slacklog.testing import SlackEmulator
from ppe_slacklog.testing._emulator import DEFAULT_SCOPES

CHANNEL = "experiment-progress"


@pytest.fixture
def no_join_emu() -> Iterator[SlackEmulator]:
    """An emulator whose token may not join channels by itself."""
    scopes = [s for s in DEFAULT_SCOPES if s != "channels:join"]
    with SlackEmulator(scopes=scopes) as emulator:
        yield emulator


def _handler(emu: SlackEmulator, channel: str, **kw: object) -> SlackHandler:
    handler = SlackHandler(
        channel, emu.token, base_url=emu.base_url, flush_timeout=10, **kw
    )
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def test_public_channel_is_joined_when_the_token_may(emu: SlackEmulator) -> None:
    emu.add_channel("outside", member=False)
    handler = _handler(emu, "outside")
    logging.getLogger("myproject").info("first")
    logging.getLogger("myproject").info("second")
    assert handler.drain()
    texts = [m.text for m in emu.messages("outside")]
    assert len(texts) == 2 and "first" in texts[0] and "second" in texts[1]
    joins = [c for c in emu.calls if c.method == "conversations.join"]
    assert len(joins) == 1 and joins[0].ok
    assert handler.stats.failed == 0


def test_without_join_scope_the_error_says_to_invite_once(
    no_join_emu: SlackEmulator,
) -> None:
    emu = no_join_emu
    emu.add_channel("outside", member=False)
    manager = make_manager(max_epochs=3)
    manager.extend(
        ppe_slacklog.Slack("outside", token=emu.token, base_url=emu.base_url)
    )
    with pytest.warns(SlackDeliveryWarning) as caught:
        run_training(manager)
    texts = [str(w.message) for w in caught if w.category is SlackDeliveryWarning]
    assert len(texts) == 1
    assert "/invite" in texts[0] and "channels:join" in texts[0]
    assert "outside" in texts[0]
    assert manager.iteration == 6
    # Asked once: later posts fail at once instead of asking Slack again.
    joins = [c for c in emu.calls if c.method == "conversations.join"]
    assert len(joins) == 1
    assert emu.messages("outside") == []


def test_posts_work_again_once_the_bot_is_invited(no_join_emu: SlackEmulator) -> None:
    emu = no_join_emu
    emu.add_channel("outside", member=False)
    handler = _handler(emu, "outside")
    with pytest.warns(SlackDeliveryWarning, match="/invite"):
        logging.getLogger("myproject").warning("before the invite")
        handler.drain()
    emu.invite_bot("outside")  # the user follows the advice
    logging.getLogger("myproject").warning("after the invite")
    assert handler.drain()
    texts = [m.text for m in emu.messages("outside")]
    assert len(texts) == 1 and "after the invite" in texts[0]
    # Joining is not tried again: only posting is.
    assert len([c for c in emu.calls if c.method == "conversations.join"]) == 1


def test_error_is_broadcast_to_the_channel_by_default(slack_env: SlackEmulator) -> None:
    emu = slack_env
    manager = make_manager(max_epochs=3)
    manager.extend(ppe_slacklog.Slack(CHANNEL, msg="{default}"))
    with pytest.raises(ValueError, match="boom"):
        run_training(manager, fail_at=3)
    top = emu.top_level(CHANNEL)
    assert len(top) == 1  # the start message, parent of the thread
    thread = emu.thread(CHANNEL, top[0].ts)
    broadcast = [m for m in thread if m.reply_broadcast]
    assert len(broadcast) == 1
    assert "Error during training" in broadcast[0].text
    assert "ValueError: boom" in broadcast[0].text
    # Progress stays in the thread.
    assert [m.text for m in thread if not m.reply_broadcast][1:] == ["Epoch #1"]


def test_end_broadcast_is_opt_in_and_error_opt_out(slack_env: SlackEmulator) -> None:
    emu = slack_env
    handler = SlackHandler(CHANNEL, broadcast=("end",))
    logger = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    manager = make_manager(max_epochs=1)
    manager.extend(ppe_slacklog.Slack(CHANNEL))
    run_training(manager)
    assert handler.drain()
    thread = emu.thread(CHANNEL, emu.top_level(CHANNEL)[0].ts)
    assert [m.reply_broadcast for m in thread] == [False, True]
    assert "Training finished" in thread[-1].text


def test_only_the_head_of_a_long_error_is_broadcast(slack_env: SlackEmulator) -> None:
    emu = slack_env
    handler = SlackHandler(CHANNEL, max_message_chars=400)
    logger = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    manager = make_manager(max_epochs=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL))

    def deep(n: int) -> None:
        if n == 0:
            raise RuntimeError("deep failure")
        deep(n - 1)

    with pytest.raises(RuntimeError), manager.run_iteration():
        deep(30)
    assert handler.drain()
    thread = emu.thread(CHANNEL, emu.top_level(CHANNEL)[0].ts)
    error_parts = thread[1:]
    assert len(error_parts) >= 2
    assert [m.reply_broadcast for m in error_parts] == [True] + [False] * (
        len(error_parts) - 1
    )


def test_broadcast_rejects_unknown_kinds(emu: SlackEmulator) -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        SlackHandler(CHANNEL, emu.token, base_url=emu.base_url, broadcast=("eror",))


def test_unthreaded_error_is_a_plain_top_level_message(
    slack_env: SlackEmulator,
) -> None:
    emu = slack_env
    manager = make_manager(max_epochs=3)
    manager.extend(ppe_slacklog.Slack(CHANNEL, thread=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlackDeliveryWarning)
        with pytest.raises(ValueError):
            run_training(manager, fail_at=2)
    top = emu.top_level(CHANNEL)
    assert any("Error during training" in m.text for m in top)
    assert not any(m.reply_broadcast for m in emu.messages(CHANNEL))


def _trigger(run_id: str, text: str) -> logging.LogRecord:
    from ppe_slacklog.events import ManagerSnapshot, event_extra

    record = logging.makeLogRecord(
        {"name": "ppe_slacklog.training", "msg": text, "levelno": logging.INFO}
    )
    record.__dict__.update(
        event_extra(
            kind="trigger",
            run_id=run_id,
            snapshot=ManagerSnapshot(),
            context=None,
            template=text,
        )
    )
    return record


def test_a_thread_found_late_is_joined_late(emu: SlackEmulator) -> None:
    """Another rank's thread that is not there yet: top level until it is."""
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    parent = emu.client().chat_postMessage(channel=CHANNEL, text="start")["ts"]
    answers: list[str | None] = [None, parent]
    asked: list[int] = []

    def finder() -> str | None:
        asked.append(1)
        return answers.pop(0)

    handler.continue_thread("run-1", finder, keep_looking=True)
    handler.handle(_trigger("run-1", "too early"))
    assert handler.drain()
    handler.handle(_trigger("run-1", "in time"))
    handler.handle(_trigger("run-1", "later"))
    assert handler.drain()
    assert [m.text for m in emu.top_level(CHANNEL)] == ["start", "too early"]
    replies = [m.text for m in emu.thread(CHANNEL, parent)[1:]]
    assert "\n".join(replies).splitlines() == ["in time", "later"]
    assert len(asked) == 2  # found once: not asked again
    handler.close()


def test_a_finder_that_raises_starts_a_new_thread(emu: SlackEmulator) -> None:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)

    def finder() -> str | None:
        raise ConnectionError("store gone")

    handler.continue_thread("run-2", finder)
    with pytest.warns(SlackDeliveryWarning, match="store gone"):
        handler.handle(_trigger("run-2", "first"))
        handler.handle(_trigger("run-2", "second"))
        assert handler.drain()
    (top,) = emu.top_level(CHANNEL)
    assert top.text.splitlines()[0] == "first"
    handler.close()


def test_a_finder_without_keep_looking_starts_a_thread(emu: SlackEmulator) -> None:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    handler.continue_thread("run-3", lambda: None)
    handler.handle(_trigger("run-3", "first"))
    assert handler.drain()
    handler.handle(_trigger("run-3", "second"))
    assert handler.drain()
    (top,) = emu.top_level(CHANNEL)
    assert [m.text for m in emu.thread(CHANNEL, top.ts)] == ["first", "second"]
    assert handler.thread_ts("run-3") == top.ts
    handler.close()
