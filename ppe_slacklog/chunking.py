"""Splitting a long text into Slack-sized messages.

Slack accepts up to 40,000 characters per message but advises at most 4,000
for readable messages. A long text (a traceback, a long log line) is split at
line boundaries; a code block that spans a split is closed at the end of one
message and reopened at the start of the next, so every part renders as code.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_MAX_CHARS", "SLACK_MAX_CHARS", "check_max_chars", "split_text"]

#: Slack's recommended upper bound for the ``text`` of one message.
DEFAULT_MAX_CHARS: Final = 4000
#: Longer texts are truncated by Slack, which answers ``ok`` with only a
#: ``message_truncated`` warning (Slack changelog 2018-04).
SLACK_MAX_CHARS: Final = 40_000


def check_max_chars(max_chars: int) -> int:
    """``max_chars`` if Slack keeps whole messages of that size.

    Raises:
        ValueError: Above 40,000 characters, where Slack cuts the end off.

    Example:
        >>> check_max_chars(4000)
        4000
        >>> check_max_chars(100_000)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: max_message_chars=100000 is above Slack's limit of 40000 ...
    """
    if max_chars > SLACK_MAX_CHARS:
        raise ValueError(
            f"max_message_chars={max_chars} is above Slack's limit of "
            f"{SLACK_MAX_CHARS} characters per message: Slack would silently "
            "cut off the rest (the end of a traceback); use at most "
            f"{SLACK_MAX_CHARS}"
        )
    return max_chars


_FENCE: Final = "```"


def _slices(line: str, width: int) -> list[str]:
    """Cuts ``line`` into pieces of at most ``width``, never inside ``&lt;``."""
    pieces: list[str] = []
    start = 0
    while len(line) - start > width:
        end = start + width
        amp = line.rfind("&", end - 5, end)
        if amp > start and ";" not in line[amp:end]:
            end = amp  # an escaped entity (&amp; &lt; &gt;) stays whole
        pieces.append(line[start:end])
        start = end
    pieces.append(line[start:])
    return pieces


def split_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Splits ``text`` into parts of at most ``max_chars`` characters.

    Parts end at line boundaries; only a single line longer than a whole
    part is cut inside. Nothing is dropped: joining the parts (minus the
    fences added to keep code blocks balanced) gives back the text.

    Example:
        >>> split_text("first line\\nsecond line", max_chars=20)
        ['first line', 'second line']
        >>> split_text("```\\n" + "\\n".join(["aaaa"] * 5) + "\\n```", max_chars=20)
        ['```\\naaaa\\naaaa\\n```', '```\\naaaa\\naaaa\\n```', '```\\naaaa\\n```']
    """
    if len(text) <= max_chars:
        return [text]
    # Room for a closing "\\n```" in a part that ends inside code, and for
    # a reopening "```\\n" in front of a part that starts inside code.
    room = max_chars - len(_FENCE) - 1
    width = room - len(_FENCE) - 1
    if width < 8:
        raise ValueError(f"max_chars={max_chars} is too small to split a message")
    parts: list[str] = []
    current: list[str] = []
    in_code = False

    def close_part() -> None:
        nonlocal current
        if in_code and current and current[-1].strip() == _FENCE:
            # The block opened on this part's last line: open it in the next.
            current.pop()
            if current:
                parts.append("\n".join(current))
        elif current and current != [_FENCE]:
            parts.append("\n".join([*current, _FENCE] if in_code else current))
        current = [_FENCE] if in_code else []

    for line in text.split("\n"):
        if len(line) > width:
            # One line longer than a part: each slice becomes a part of its
            # own, so no newline is invented inside the line.
            close_part()
            for piece in _slices(line, width):
                current.append(piece)
                close_part()
        elif in_code and line.strip() == _FENCE and current == [_FENCE]:
            # The previous part already closed this block for us.
            current, in_code = [], False
            continue
        else:
            closes_code = in_code and line.strip() == _FENCE
            # A closing fence uses the room kept for it; no empty block.
            limit = max_chars if closes_code else room
            if len("\n".join([*current, line])) > limit:
                close_part()
            current.append(line)
        if line.count(_FENCE) % 2 == 1:
            in_code = not in_code
    if current and current != [_FENCE]:
        parts.append("\n".join(current))
    return parts
