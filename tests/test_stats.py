"""``SlackHandler.stats``: frozen snapshots; records and Slack messages apart."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from ppe_slacklog import DeliveryStats, SlackHandler
from ppe_slacklog.testing import SlackEmulator

CHANNEL = "general"


def _handler(emu: SlackEmulator, **options: object) -> SlackHandler:
    handler = SlackHandler(CHANNEL, emu.token, base_url=emu.base_url, **options)  # type: ignore[arg-type]
    logger = logging.getLogger("myproject")
    logger.addHandler(handler)
    logger.propagate = False
    return handler


def _posts_stored(emu: SlackEmulator) -> int:
    return sum(c.method == "chat.postMessage" and c.ok for c in emu.calls)


def test_a_saved_snapshot_does_not_change(emu: SlackEmulator) -> None:
    handler = _handler(emu)
    before = handler.stats
    logging.getLogger("myproject").warning("disk full")
    assert handler.drain(timeout=10.0)
    after = handler.stats
    # (queued/sent are the names the counters always had.)
    assert (before.queued, before.sent, before.api_calls) == (0, 0, 0)
    assert (before.records_queued, before.records_sent, before.messages_sent) == (
        0,
        0,
        0,
    )
    assert (after.records_queued, after.records_sent, after.messages_sent) == (1, 1, 1)
    assert after is not handler.stats
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.records_sent = 0  # type: ignore[misc]


def test_batched_records_count_records_and_messages_apart(
    emu: SlackEmulator,
) -> None:
    # One message per second, no burst: after the first post, the other five
    # records wait for their turn and share a message.
    handler = _handler(emu, rate_limit=1.0, burst=1)
    logger = logging.getLogger("myproject")
    for i in range(6):
        logger.warning("record %d", i)
    assert handler.drain(timeout=20.0)
    stats = handler.stats
    assert len(emu.messages(CHANNEL)) < 6  # they were batched
    assert (stats.records_queued, stats.records_sent) == (6, 6)
    assert stats.messages_sent == _posts_stored(emu) == len(emu.messages(CHANNEL))
    assert (stats.records_dropped, stats.records_failed) == (0, 0)
    # The old names stay, meaning records.
    assert (stats.queued, stats.sent, stats.dropped, stats.failed) == (6, 6, 0, 0)


def test_a_split_record_counts_each_message(emu: SlackEmulator) -> None:
    handler = _handler(emu, max_message_chars=100, max_record_chars=1000)
    logging.getLogger("myproject").warning("x" * 250)
    assert handler.drain(timeout=20.0)
    stats = handler.stats
    assert stats.records_sent == 1
    assert stats.messages_sent == _posts_stored(emu) == len(emu.messages(CHANNEL))
    assert stats.messages_sent >= 3


def test_snapshot_fields_are_documented() -> None:
    doc = DeliveryStats.__doc__ or ""
    for field in dataclasses.fields(DeliveryStats):
        assert f"        {field.name}: " in doc
