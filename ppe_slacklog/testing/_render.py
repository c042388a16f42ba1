"""Plain-text rendering of a channel, as a user would read it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._models import EmulatedMessage

__all__ = ["render_blocks", "render_channel"]

_REPLY = "  > "
_REPLY_CONT = "    "
# Continuation lines of a top-level message are indented too, so they cannot
# be mistaken for another top-level message.
_TOP_CONT = "  "
_DIVIDER = "\u2500" * 24
_FIELD_GAP = "   "
_DELETED_FILE = "(This file was deleted.)"

#: ``image_name(slack_file)``: the file name a ``slack_file`` object shows.
ImageName = Callable[[Mapping[str, Any]], str]


def _no_names(ref: Mapping[str, Any]) -> str:
    return str(ref.get("id") or ref.get("url") or "?")


def _text_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("text", ""))
    return ""


def _image(item: Mapping[str, Any], image_name: ImageName) -> str:
    ref = item.get("slack_file")
    if isinstance(ref, Mapping):
        return f"[image: {image_name(ref)}]"
    return f"[image: {item.get('image_url', '?')}]"


def _fields(fields: Sequence[Any]) -> list[str]:
    # Slack lays section fields out in two columns.
    cells = [" ".join(_text_of(f).splitlines()) for f in fields]
    left = cells[0::2]
    width = max(len(c) for c in left)
    lines = []
    for number, cell in enumerate(left):
        right = cells[2 * number + 1] if 2 * number + 1 < len(cells) else ""
        lines.append((cell.ljust(width) + _FIELD_GAP + right).rstrip())
    return lines


def _rich_text(value: Any) -> str:
    # Flattens rich_text sections, lists and quotes to their words.
    if isinstance(value, list):
        return "".join(_rich_text(v) for v in value)
    if not isinstance(value, Mapping):
        return ""
    kind = value.get("type")
    if kind == "text":
        return str(value.get("text", ""))
    if kind == "link":
        return str(value.get("text") or value.get("url", ""))
    if kind == "emoji":
        return f":{value.get('name', '')}:"
    if kind == "user":
        return f"@{value.get('user_id', '')}"
    if kind == "channel":
        return f"#{value.get('channel_id', '')}"
    inner = _rich_text(value.get("elements", []))
    if kind in ("rich_text_section", "rich_text_preformatted", "rich_text_quote"):
        return inner + "\n"
    return inner


def render_blocks(
    blocks: Sequence[Mapping[str, Any]], image_name: ImageName = _no_names
) -> list[str]:
    """The lines a person reads in a Block Kit message.

    Headers, section texts and markdown as their text, section fields in two
    columns, context elements on one line, dividers as a rule, images as
    ``[image: <file name or url>]``. Formatting marks are kept as sent.

    Args:
        blocks: The message's blocks.
        image_name: Name shown for an image that is a ``slack_file``.

    Example:
        >>> def md(text):
        ...     return {"type": "mrkdwn", "text": text}
        >>> render_blocks([
        ...     {"type": "header", "text": {"type": "plain_text", "text": "Run"}},
        ...     {"type": "section", "fields": [
        ...         md("loss"), md("0.5"), md("accuracy"), md("0.9")
        ...     ]},
        ...     {"type": "context", "elements": [md("3 min")]},
        ... ])
        ['Run', 'loss       0.5', 'accuracy   0.9', '3 min']
    """
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(_text_of(block.get("text")))
        elif kind == "section":
            if block.get("text") is not None:
                lines.extend(_text_of(block.get("text")).splitlines())
            fields = block.get("fields")
            if isinstance(fields, list) and fields:
                lines.extend(_fields(fields))
        elif kind == "context":
            parts = []
            for element in block.get("elements") or []:
                if isinstance(element, Mapping) and element.get("type") == "image":
                    parts.append(_image(element, image_name))
                else:
                    parts.append(_text_of(element))
            lines.append("  ".join(parts))
        elif kind == "divider":
            lines.append(_DIVIDER)
        elif kind == "image":
            lines.append(_image(block, image_name))
        elif kind == "markdown":
            lines.extend(str(block.get("text", "")).splitlines())
        elif kind == "rich_text":
            lines.extend(_rich_text(block.get("elements", [])).splitlines())
        else:
            lines.append(f"[{kind}]")
    return lines


def _describe(message: EmulatedMessage, image_name: ImageName) -> str:
    if message.blocks:
        # Slack shows the blocks; the text is only for notifications.
        parts = ["\n".join(render_blocks(message.blocks, image_name))]
    else:
        parts = [message.text] if message.text else []
        if parts and message.edits:
            # Slack marks text edits only: "If blocks are used [...] the
            # edited flag will not be displayed" (docs.slack.dev chat.update).
            parts[-1] += " (edited)"
    parts.extend(
        _DELETED_FILE if f.deleted else f"[file: {f.name}]" for f in message.files
    )
    return " ".join(parts) if parts else "(no text)"


def _block(text: str, first: str, rest: str) -> list[str]:
    lines = text.splitlines() or [""]
    return [first + lines[0]] + [rest + line for line in lines[1:]]


def render_channel(
    name: str,
    messages: Sequence[EmulatedMessage],
    image_name: ImageName = _no_names,
) -> str:
    """Render top-level messages, each followed by its indented replies.

    Args:
        name: Channel name (without ``#``).
        messages: The channel's messages in post order.
        image_name: Name shown for an image block's ``slack_file``.

    Returns:
        Multi-line text; broadcast replies are marked
        ``(also sent to the channel)``, files appear as ``[file: name]``,
        Block Kit messages as :func:`render_blocks` shows them.

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
        lines.extend(_block(_describe(parent, image_name), "", _TOP_CONT))
        for reply in messages:
            if reply.thread_ts != parent.ts:
                continue
            text = _describe(reply, image_name)
            if reply.reply_broadcast:
                text = f"(also sent to the channel) {text}"
            lines.extend(_block(text, _REPLY, _REPLY_CONT))
    return "\n".join(lines)
