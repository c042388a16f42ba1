"""Finding a run's thread in Slack, and how many of its events it holds.

Every post of ``SlackHandler`` carries message metadata
``{"event_type": "ppe_slacklog_post", "event_payload": {"id": "<message>-<step>",
"run_id": "<run>"}}`` (``<step>`` numbers the parts of a text split for
Slack's length limit). The run's thread parent is the channel message with
that ``run_id``; replay posts one record per message, so the number of
distinct ``<message>`` ids in the thread is the number of the run's events
already posted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, NamedTuple

__all__ = ["ThreadState", "find_thread"]

_METADATA_EVENT: Final = "ppe_slacklog_post"
# conversations.history pages of 200: how far back a run's thread is looked for.
_MAX_PAGES: Final = 10


class ThreadState(NamedTuple):
    """A run's thread: its parent's ``ts`` and how many events it holds."""

    ts: str
    events: int


def _ours(message: dict[str, Any], run_id: str) -> str | None:
    """The message's post id when it is one of run ``run_id``'s posts."""
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    if metadata.get("event_type") != _METADATA_EVENT:
        return None
    if payload.get("run_id") != run_id:
        return None
    post_id = str(payload.get("id") or "")
    return post_id.rsplit("-", 1)[0] or None


def _pages(method: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for _ in range(_MAX_PAGES):
        response = method(include_all_metadata=True, limit=200, **kwargs)
        yield from response.get("messages") or []
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return
        kwargs["cursor"] = cursor


def find_thread(client: Any, channel_id: str, run_id: str) -> ThreadState | None:
    """The thread of run ``run_id`` in ``channel_id``, or ``None``.

    Reads ``conversations.history`` (the last 2,000 messages) and the
    thread's ``conversations.replies``; needs ``channels:history``.
    Raises ``slack_sdk.errors.SlackApiError`` when Slack refuses.
    """
    parent: str | None = None
    for message in _pages(client.conversations_history, channel=channel_id):
        thread_ts = message.get("thread_ts")
        # A broadcast reply shows in the channel too; only the parent counts.
        if thread_ts not in (None, message.get("ts")):
            continue
        if _ours(message, run_id) is not None:
            parent = str(message["ts"])  # newest first: keep the oldest
    if parent is None:
        return None
    posts: set[str] = set()
    for message in _pages(client.conversations_replies, channel=channel_id, ts=parent):
        post_id = _ours(message, run_id)
        if post_id is not None:
            posts.add(post_id)
    return ThreadState(parent, len(posts))
