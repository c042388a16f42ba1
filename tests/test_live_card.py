"""The live card against the emulator: a run's thread parent, edited in place."""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from typing import Any

import pytest
from conftest import make_manager, run_training, start_text, thread_texts

import ppe_slacklog
from ppe_slacklog import SlackDeliveryWarning, SlackHandler
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "experiment-progress"
FAST = pytest.mark.slack_emulator(rate_limits=False, share_delay=0)


def _card(emu: SlackEmulator) -> Any:
    (parent,) = emu.top_level(CHANNEL)
    return emu.message(CHANNEL, parent.ts)


def _header(message: Any) -> str:
    return str(message.blocks[0]["text"]["text"])


def _blocks_text(blocks: Any) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def _slack(emu: SlackEmulator, **kwargs: Any) -> ppe_slacklog.Slack:
    return ppe_slacklog.Slack(CHANNEL, token=emu.token, base_url=emu.base_url, **kwargs)


def _metrics(manager: Any) -> dict[str, float]:
    it = manager.iteration + 1  # inside the iteration, before it counts
    return {"main/loss": 1.0 / it, "val/accuracy": it / 10}


def _updates(emu: SlackEmulator) -> list[Any]:
    return [c for c in emu.calls if c.method == "chat.update"]


@FAST
def test_the_thread_parent_is_a_card_that_ends_in_its_final_state(
    emu: SlackEmulator,
) -> None:
    manager = make_manager(max_epochs=3, iters_per_epoch=2)
    manager.extend(
        _slack(emu, msg="epoch {manager.epoch} loss {main/loss:.3f}"),
        trigger=(1, "epoch"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlackDeliveryWarning)
        run_training(manager, _metrics)
    # finalize returned: the final state is in Slack already (no waiting).
    card = _card(emu)
    assert _header(card) == "✅ Finished · epoch 3/3"
    body = _blocks_text(card.blocks)
    assert "100%" in body and "iteration 6/6" in body
    assert "main/loss" in body and "0.1667 (3)" in body  # best, its epoch
    assert "val/accuracy" in body and "0.6 (3)↑" in body
    # Its text is ppe's start text, with the state.
    assert card.text.startswith("✅ Finished · 🏃 *Training started!")
    for version in emu.edits(CHANNEL, card.ts):
        assert "*Training started!" in version.text
    # Every message still goes to the thread, as before.
    replies = [m.text for m in emu.thread(CHANNEL, card.ts)[1:] if not m.files]
    assert replies[:3] == [
        "epoch 1 loss 0.500",
        "epoch 2 loss 0.250",
        "epoch 3 loss 0.167",
    ]
    assert replies[-1].startswith("✅ *Training finished!")


@FAST
def test_the_card_advances_between_triggers(emu: SlackEmulator) -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    observer = Collect(logging.INFO)
    logging.getLogger("ppe_slacklog").addHandler(observer)
    logging.getLogger("ppe_slacklog").setLevel(logging.INFO)
    manager = make_manager(max_epochs=1, iters_per_epoch=8)
    manager.extend(_slack(emu, card_interval=0.2), trigger=(1, "epoch"))

    def slow(manager: Any) -> dict[str, float]:
        # An epoch that takes long (one trigger at its end), longer than
        # what Slack's Tier 3 allows for a few edits (about one in 1.3 s).
        time.sleep(0.6)
        return {}

    run_training(manager, slow)
    card = _card(emu)
    shown = [
        int(m.group(1))
        for edit in emu.edits(CHANNEL, card.ts)
        if (m := re.search(r"iteration (\d+)/8", _blocks_text(edit.blocks)))
    ]
    between = sorted({i for i in shown if 0 < i < 8})
    assert len(between) >= 2, shown  # progress shown before any trigger
    assert "ETA" in _blocks_text(emu.edits(CHANNEL, card.ts)[-1].blocks)
    # No record was added for it: start, one trigger, end.
    assert [r.ppe_event for r in seen] == ["start", "trigger", "end"]


@FAST
def test_updates_are_coalesced_to_one_per_interval(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=4, iters_per_epoch=10)
    manager.extend(_slack(emu, msg="{main/loss}", card_interval=0.5))

    def fast(manager: Any) -> dict[str, float]:
        time.sleep(0.04)
        return _metrics(manager)

    started = time.monotonic()
    run_training(manager, fast)
    elapsed = time.monotonic() - started
    updates = _updates(emu)
    # 40 trigger events; at most one edit per interval, plus the final one.
    assert 1 <= len(updates) <= elapsed / 0.5 + 2
    assert _header(_card(emu)) == "✅ Finished · epoch 4/4"


@FAST
def test_a_429_storm_on_chat_update_loses_no_final_state(emu: SlackEmulator) -> None:
    emu.rate_limit("chat.update", per_second=0.5, burst=1)
    manager = make_manager(max_epochs=4, iters_per_epoch=5)
    extension = _slack(emu, card_interval=0.1)
    manager.extend(extension, trigger=(1, "iteration"))
    handlers: list[SlackHandler] = []

    def fast(manager: Any) -> dict[str, float]:
        time.sleep(0.08)
        if extension._own_handler is not None:
            handlers.append(extension._own_handler)
        return _metrics(manager)

    with warnings.catch_warnings():
        warnings.simplefilter("error", SlackDeliveryWarning)
        run_training(manager, fast)
    assert _header(_card(emu)) == "✅ Finished · epoch 4/4"
    statuses = [c.status for c in _updates(emu)]
    assert 200 in statuses
    done, limited = handlers[-1].card_updates
    assert done == statuses.count(200)
    assert limited == statuses.count(429)


@FAST
def test_a_failed_run_shows_the_error_on_its_card(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=3, iters_per_epoch=2)
    manager.extend(_slack(emu), trigger=(1, "epoch"))
    with pytest.raises(ValueError, match="boom"):
        run_training(manager, _metrics, fail_at=4)
    card = _card(emu)
    assert _header(card) == "❌ Failed · epoch 1/3"
    assert "ValueError: boom" in _blocks_text(card.blocks)
    assert card.text.startswith("❌ Failed · ")


@FAST
def test_card_false_gives_ppe_messages_and_no_edits(emu: SlackEmulator) -> None:
    def run(card: bool, channel: str) -> list[tuple[str, bool]]:
        manager = make_manager(max_epochs=2, iters_per_epoch=2)
        manager.extend(
            ppe_slacklog.Slack(
                channel,
                token=emu.token,
                base_url=emu.base_url,
                card=card,
                msg="e{manager.epoch} {main/loss}",
            ),
            trigger=(1, "epoch"),
        )
        run_training(manager, _metrics)
        (parent,) = emu.top_level(channel)
        first = emu.edits(channel, parent.ts)[:1] or [emu.message(channel, parent.ts)]
        # The chart (a file message) is the card's, not a message of ppe's.
        replies = [m for m in emu.thread(channel, parent.ts)[1:] if not m.files]
        return [(m.text, m.blocks is not None) for m in [first[0], *replies]]

    plain = run(False, CHANNEL)
    assert _updates(emu) == []
    assert not any(has_blocks for _, has_blocks in plain)
    emu.add_channel("other")
    carded = run(True, "other")
    (parent,) = emu.top_level("other")
    assert _header(emu.message("other", parent.ts)) == "✅ Finished · epoch 2/2"
    # Byte for byte the same messages; only the parent carries blocks.
    texts = [t for t, _ in carded]
    assert [t for t, _ in plain][1:] == texts[1:]
    assert plain[0][0].split("[PID")[0] == start_text(texts[0]).split("[PID")[0]
    assert carded[0][1]


def test_a_webhook_posts_no_card_and_warns_nothing(emu: SlackEmulator) -> None:
    url = emu.webhook_url(CHANNEL)
    manager = make_manager(max_epochs=2, iters_per_epoch=2)
    manager.extend(ppe_slacklog.SlackWebhook(url), trigger=(1, "epoch"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_training(manager, _metrics)
    assert _updates(emu) == []
    messages = emu.messages(CHANNEL)
    assert messages and all(m.blocks is None for m in messages)


@FAST
def test_a_card_that_cannot_be_edited_is_replaced_once(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=3, iters_per_epoch=3)
    manager.extend(_slack(emu, card_interval=0.1), trigger=(1, "epoch"))

    def close_window(manager: Any) -> dict[str, float]:
        time.sleep(0.1)
        if manager.iteration == 4:
            card = emu.top_level(CHANNEL)[0]
            emu.close_edit_window(CHANNEL, card.ts)
        return _metrics(manager)

    with pytest.warns(SlackDeliveryWarning, match="a new card was posted") as caught:
        run_training(manager, close_window)
    assert len([w for w in caught if "card" in str(w.message)]) == 1
    parent = emu.top_level(CHANNEL)[0]
    cards = [m for m in emu.thread(CHANNEL, parent.ts) if m.blocks is not None]
    assert len(cards) == 2  # the parent, frozen, and its replacement
    assert _header(emu.message(CHANNEL, cards[1].ts)) == "✅ Finished · epoch 3/3"
    assert _header(emu.message(CHANNEL, parent.ts)).startswith("🏃 Running")


@FAST
def test_a_configured_handler_renders_cards_with_chosen_metrics(
    emu: SlackEmulator,
) -> None:
    handler = SlackHandler(
        CHANNEL,
        emu.token,
        base_url=emu.base_url,
        card_metrics={"val/accuracy": "max"},
    )
    logging.getLogger(ppe_slacklog.DEFAULT_LOGGER).addHandler(handler)
    logging.getLogger(ppe_slacklog.DEFAULT_LOGGER).setLevel(logging.INFO)
    manager = make_manager(max_epochs=2, iters_per_epoch=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL), trigger=(1, "epoch"))
    run_training(manager, _metrics)
    body = _blocks_text(_card(emu).blocks)
    assert "val/accuracy" in body and "main/loss" not in body


@FAST
def test_other_ranks_post_no_card(emu: SlackEmulator) -> None:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url)
    logger = logging.getLogger("ranks")
    logger.addHandler(handler)
    for kind in ("start", "error"):
        logger.error(
            "event",
            extra={"ppe_event": kind, "run_id": "r1", "rank": 1, "world_size": 2},
        )
    handler.flush()
    assert _updates(emu) == []
    assert all(m.blocks is None for m in emu.messages(CHANNEL))


@FAST
def test_cards_stay_within_block_kit_limits(emu: SlackEmulator) -> None:
    manager = make_manager(max_epochs=2, iters_per_epoch=2)
    long_keys = {f"group{i}/" + "k" * 80: float(i) for i in range(12)}
    manager.extend(
        _slack(emu, start_msg="S" * 4000 + " ``` <&>", card_interval=0.1),
        trigger=(1, "epoch"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlackDeliveryWarning)
        run_training(manager, lambda m: long_keys)
    card = _card(emu)
    assert _header(card) == "✅ Finished · epoch 2/2"
    assert len(card.blocks) <= 50


@pytest.mark.slack_emulator(rate_limits=False, share_delay=0.1)
def test_the_chart_is_attached_and_replaced(emu: SlackEmulator) -> None:
    pytest.importorskip("matplotlib")
    manager = make_manager(max_epochs=10, iters_per_epoch=2)
    manager.extend(_slack(emu, chart_interval=0.3), trigger=(1, "epoch"))

    def slow(manager: Any) -> dict[str, float]:
        time.sleep(0.15)
        return _metrics(manager)

    run_training(manager, slow)
    card = _card(emu)
    (image,) = [b for b in card.blocks if b["type"] == "image"]
    # One chart during the run at least, replaced by the final one.
    deleted = [c for c in emu.calls if c.method == "files.delete" and c.ok]
    assert deleted
    charts = [f for f in emu.files if f.name.startswith("metrics-")]
    assert [f.id for f in charts] == [image["slack_file"]["id"]]
    replies = emu.thread(CHANNEL, card.ts)[1:]
    assert replies[-1].files and replies[-1].files[0].id == charts[0].id


def _slack_config(emu: SlackEmulator, n: int = 1, **handler: Any) -> None:
    import logging.config

    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                f"s{i}": {
                    "()": "ppe_slacklog.SlackHandler",
                    "channel": CHANNEL,
                    "token": emu.token,
                    "base_url": emu.base_url,
                    **handler,
                }
                for i in range(n)
            },
            "loggers": {
                ppe_slacklog.DEFAULT_LOGGER: {
                    "handlers": [f"s{i}" for i in range(n)],
                    "level": "INFO",
                }
            },
        }
    )


@FAST
def test_a_card_slack_will_not_edit_is_reported_once_and_never_hangs(
    emu: SlackEmulator,
) -> None:
    emu.fail_next(10_000, status=503, method="chat.update")
    _slack_config(emu, flush_timeout=1.5, card_interval=0.1)
    manager = make_manager(max_epochs=2, iters_per_epoch=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL), trigger=(1, "epoch"))

    def slow(manager: Any) -> dict[str, float]:
        time.sleep(0.2)
        return _metrics(manager)

    with pytest.warns(SlackDeliveryWarning) as caught:
        run_training(manager, slow)
        for handler in logging.getLogger(ppe_slacklog.DEFAULT_LOGGER).handlers:
            handler.close()  # the flush just timed out: no second wait
    late = [
        w for w in caught if "does not show the run's final state" in str(w.message)
    ]
    assert len(late) == 1
    assert "Slack answered 'http_503'" in str(late[0].message)
    # The thread itself is complete.
    assert thread_texts(emu, CHANNEL)[-1].startswith("✅ *Training finished!")


@FAST
def test_two_handlers_of_one_channel_post_one_card(emu: SlackEmulator) -> None:
    _slack_config(emu, n=2)
    manager = make_manager(max_epochs=2, iters_per_epoch=2)
    manager.extend(ppe_slacklog.Slack(CHANNEL), trigger=(1, "epoch"))
    run_training(manager, _metrics)
    cards = [m for m in emu.top_level(CHANNEL) if m.blocks]
    assert len(cards) == 1
    assert _header(emu.message(CHANNEL, cards[0].ts)) == "✅ Finished · epoch 2/2"


@FAST
def test_a_deleted_card_without_replies_is_replaced_where_it_is_seen(
    emu: SlackEmulator,
) -> None:
    manager = make_manager(max_epochs=4, iters_per_epoch=2)
    # No trigger messages: the card has no replies when it is deleted.
    manager.extend(_slack(emu, card_interval=0.1), trigger=(1, "epoch"))

    def delete(manager: Any) -> dict[str, float]:
        time.sleep(0.15)
        if manager.iteration == 3:
            emu.delete_message(CHANNEL, emu.top_level(CHANNEL)[0].ts)
        return _metrics(manager)

    with pytest.warns(SlackDeliveryWarning, match="at the top of the channel"):
        run_training(manager, delete)
    (card,) = emu.top_level(CHANNEL)  # the replacement, in sight
    assert _header(emu.message(CHANNEL, card.ts)) == "✅ Finished · epoch 4/4"
    # The run's messages went on under it.
    assert thread_texts(emu, CHANNEL)[-1].startswith("✅ *Training finished!")
    assert emu.orphans(CHANNEL) == []


@FAST
def test_a_run_left_behind_stops_its_card(emu: SlackEmulator) -> None:
    import gc

    from ppe_slacklog import cards

    manager = make_manager(max_epochs=5, iters_per_epoch=2)
    extension = _slack(emu, card_interval=0.1)
    manager.extend(extension, trigger=(1, "epoch"))
    while not manager.stop_trigger:
        with manager.run_iteration():
            pass
        if manager.iteration == 3:
            break  # a notebook cell stopped, a sweep that moves on
    del manager
    gc.collect()
    assert emu.wait_for(
        lambda e: bool(e.top_level(CHANNEL)) and "Stopped" in _header(_card(e)),
        timeout=10,
    )
    assert "loop was left" in _blocks_text(_card(emu).blocks)
    # Its card is let go (a sweep must not pile them up).
    assert emu.wait_for(
        lambda e: all(key[2] != extension.run_id for key in cards._desk._slots),
        timeout=10,
    )


@FAST
def test_the_card_escapes_what_it_shows_and_follows_the_stop_trigger(
    emu: SlackEmulator,
) -> None:
    manager = make_manager(
        max_epochs=100, iters_per_epoch=10, stop_trigger=(25, "iteration")
    )
    manager.extend(_slack(emu), trigger=(10, "iteration"))
    run_training(manager, lambda m: {"<!channel> a&b": 1.0, "x": 2.0})
    card = _card(emu)
    # 25 iterations of 10 per epoch: it ended in epoch 2 of 3.
    assert _header(card) == "✅ Finished · epoch 2/3"
    body = _blocks_text(card.blocks)
    assert "iteration 25/25" in body
    assert "&lt;!channel&gt; a&amp;b" in body and "<!channel>" not in body
