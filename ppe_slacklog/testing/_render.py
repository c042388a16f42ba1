"""Plain-text rendering of a channel, as a user would read it."""

from __future__ import annotations

from collections.abc import Sequence

from ._models import EmulatedMessage

__all__ = ["render_channel"]

_REPLY = "  > "
_REPLY_CONT = "    "
# Continuation lines of a top-level message are indented too, so they cannot
# be mistaken for another top-level message.
_TOP_CONT = "  "


def _describe(message: EmulatedMessage) -> str:
    parts = [message.text] if message.text else []
    parts.extend(f"[file: {f.name}]" for f in message.files)
    return " ".join(parts) if parts else "(no text)"


def _block(text: str, first: str, rest: str) -> list[str]:
    lines = text.splitlines() or [""]
    return [first + lines[0]] + [rest + line for line in lines[1:]]


def render_channel(name: str, messages: Sequence[EmulatedMessage]) -> str:
    """Render top-level messages, each followed by its indented replies.

    Args:
        name: Channel name (without ``#``).
        messages: The channel's messages in post order.

    Returns:
        Multi-line text; broadcast replies are marked
        ``(also sent to the channel)``, files appear as ``[file: name]``.

    Example:
        >>> m = EmulatedMessage("1.000001", "C1", "hello", None, False, (), "U1")
        >>> print(render_channel("general", [m]))
        #general
        hello
    """
    lines = [f"#{name}"]
    top = [m for m in messages if m.thread_ts is None]
    if not top:
        lines.append("(no messages)")
    for parent in top:
        lines.extend(_block(_describe(parent), "", _TOP_CONT))
        for reply in messages:
            if reply.thread_ts != parent.ts:
                continue
            text = _describe(reply)
            if reply.reply_broadcast:
                text = f"(also sent to the channel) {text}"
            lines.extend(_block(text, _REPLY, _REPLY_CONT))
    return "\n".join(lines)
