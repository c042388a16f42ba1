"""Counters of what delivery did: live ones for the sender, snapshots for users.

The outbox and the Slack API layer count into one :class:`DeliveryCounters`;
``SlackHandler.stats`` hands out a :class:`DeliveryStats`, a frozen copy
taken under the outbox's lock, so that a saved value never changes and the
fields of one snapshot belong together.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["DeliveryCounters", "DeliveryStats"]


class _RecordAliases:
    """The names the counters had before records and messages were told apart."""

    records_queued: int
    records_sent: int
    records_dropped: int
    records_failed: int

    @property
    def queued(self) -> int:
        """Alias of ``records_queued``."""
        return self.records_queued

    @property
    def sent(self) -> int:
        """Alias of ``records_sent`` (records, not Slack messages)."""
        return self.records_sent

    @property
    def dropped(self) -> int:
        """Alias of ``records_dropped``."""
        return self.records_dropped

    @property
    def failed(self) -> int:
        """Alias of ``records_failed``."""
        return self.records_failed


@dataclass(frozen=True)
class DeliveryStats(_RecordAliases):
    """What a :class:`~ppe_slacklog.SlackHandler` did, as of one moment.

    ``handler.stats`` returns a new snapshot each time; a saved one never
    changes. Records are what was logged; Slack messages are what Slack
    shows: records waiting together share one message, and a long record
    may take several.

    Attributes:
        records_queued: Records accepted from ``emit`` (one each, whatever
            the message they end up in).
        records_sent: Records whose message Slack stored.
        records_dropped: Records discarded without delivery: the queue was
            full (oldest trigger and sub-WARNING records first), the handler
            was closed, or the exit's ``flush_timeout`` ran out.
        records_failed: Records given up on after an error (Slack refused
            the message by name, or a bug in the sender).
        messages_sent: Slack messages stored: each ``chat.postMessage`` (or
            webhook post) that succeeded, each part of a split text, each
            completed file upload, and the notice of dropped records. Equals
            the ``chat.postMessage`` calls that succeeded when no files are
            sent.
        api_calls: Slack API requests made, retries and look-ups included.
        retries: Requests repeated by the outbox after a rate limit, a 5xx
            answer or a connection error.
        rate_limited: 429 answers received.
        unprintable: ``[unprintable: name]`` markers in the texts this
            handler rendered: values (a reported meta tensor, a ``context``
            attribute, a log argument, an exception's message) that raised
            when turned into text. Each such message is still sent.
        queued: Alias of ``records_queued``.
        sent: Alias of ``records_sent``.
        dropped: Alias of ``records_dropped``.
        failed: Alias of ``records_failed``.

    Example:
        >>> stats = DeliveryStats(records_queued=6, records_sent=6, messages_sent=4)
        >>> stats.records_sent, stats.messages_sent, stats.sent
        (6, 4, 6)
    """

    records_queued: int = 0
    records_sent: int = 0
    records_dropped: int = 0
    records_failed: int = 0
    messages_sent: int = 0
    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    unprintable: int = 0


@dataclass
class DeliveryCounters(_RecordAliases):
    """The live counters behind :class:`DeliveryStats` (same fields), changed in place.

    Owned by one outbox and its transport; users get :meth:`snapshot` s.

    Example:
        >>> counters = DeliveryCounters()
        >>> counters.records_sent += 2
        >>> saved = counters.snapshot()
        >>> counters.records_sent += 1
        >>> saved.records_sent, counters.snapshot().records_sent
        (2, 3)
    """

    records_queued: int = 0
    records_sent: int = 0
    records_dropped: int = 0
    records_failed: int = 0
    messages_sent: int = 0
    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    unprintable: int = 0

    def snapshot(self) -> DeliveryStats:
        """A frozen copy of the counters as they are now."""
        return DeliveryStats(**vars(self))


# One list of fields for both: a counter added to one must be added to the other.
assert [f.name for f in fields(DeliveryStats)] == [
    f.name for f in fields(DeliveryCounters)
]
