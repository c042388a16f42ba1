"""Splitting a long text into Slack-sized messages.

Slack accepts up to 40,000 characters per message but advises at most 4,000
for readable messages. A long text (a traceback, a long log line) is split at
line boundaries; a code block that spans a split is closed at the end of one
message and reopened at the start of the next, so every part renders as code.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_MAX_CHARS", "split_text"]

#: Slack's recommended upper bound for the ``text`` of one message.
DEFAULT_MAX_CHARS: Final = 4000

_FENCE: Final = "```"


def _hard_split(line: str, width: int) -> list[str]:
    return [line[i : i + width] for i in range(0, len(line), width)] or [""]


def split_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Splits ``text`` into parts of at most ``max_chars`` characters.

    Parts end at line boundaries; only a single line longer than a whole
    part is cut inside. Nothing is dropped: joining the parts (minus the
    fences added to keep code blocks balanced) gives back the text.

    Example:
        >>> split_text("a\\nb\\nc", max_chars=3)
        ['a\\nb', 'c']
        >>> split_text("```\\n1\\n2\\n```", max_chars=9)
        ['```\\n1\\n```', '```\\n2\\n```']
    """
    if len(text) <= max_chars:
        return [text]
    # Room for a closing fence and its newline in a part that ends in code.
    room = max_chars - len(_FENCE) - 1
    if room < 1:
        raise ValueError(f"max_chars={max_chars} is too small to split code")
    parts: list[str] = []
    current: list[str] = []
    size = 0
    in_code = False
    for line in text.split("\n"):
        for piece in _hard_split(line, room - len(_FENCE) - 1):
            extra = len(piece) + (1 if current else 0)
            if current and size + extra > room:
                if in_code:
                    current.append(_FENCE)
                parts.append("\n".join(current))
                current = [_FENCE] if in_code else []
                size = len(_FENCE) if in_code else 0
                extra = len(piece) + (1 if current else 0)
            current.append(piece)
            size += extra
            if piece.count(_FENCE) % 2 == 1:
                in_code = not in_code
    if current and current != [_FENCE]:
        parts.append("\n".join(current))
    return parts
