"""Counters of what delivery did, shared by the outbox and the Slack API layer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeliveryStats"]


@dataclass
class DeliveryStats:
    """What a :class:`~ppe_slacklog.SlackHandler` did; read them to see what happened.

    Attributes:
        queued: Posts accepted from ``emit``.
        sent: Posts fully delivered.
        api_calls: Slack API requests made, retries included.
        retries: Requests repeated after a rate limit, a 5xx answer or a
            connection error (by slack_sdk's retry handlers or the outbox).
        rate_limited: 429 answers received.
        dropped: Posts discarded without delivery (queue closed or full).
        failed: Posts given up on after an error.
        unprintable: ``[unprintable: name]`` markers in the texts this
            handler rendered: values (a reported meta tensor, a ``context``
            attribute, a log argument, an exception's message) that raised
            when turned into text. Each such message is still sent.

    Example:
        >>> DeliveryStats().sent
        0
    """

    queued: int = 0
    sent: int = 0
    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    dropped: int = 0
    failed: int = 0
    unprintable: int = 0
