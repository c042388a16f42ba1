"""Capping the text of one record, so that one huge record cannot starve a channel.

At Slack's pace of about one message a second, a 5 MB log line would be
more than a thousand messages, and every record after it (the ERROR that
explains it, the end of the run) would wait behind them past any flush
bound. :func:`cap_text` keeps the head and the tail of such a text and
replaces the middle with one line saying how much was left out: the head
says what was logged, the tail of a traceback names the exception raised.
"""

from __future__ import annotations

from typing import Final

from .chunking import safe_cut

__all__ = ["DEFAULT_RECORD_MESSAGES", "MIN_RECORD_CHARS", "cap_text", "record_limit"]

#: A record's text is capped at this many messages' worth by default.
DEFAULT_RECORD_MESSAGES: Final = 3

#: The smallest cap: room for the notice line and a little text around it.
MIN_RECORD_CHARS: Final = 200

_FENCE: Final = "```"
# How far the tail's start may move back to keep a character whole; past
# that (one "character" of combining marks longer than this) it is cut.
_SLACK: Final = 64


def _notice(lines: int, chars: int) -> str:
    noun = "line" if lines == 1 else "lines"
    return f"✂️ _… {lines:,} {noun} ({chars:,} characters) left out here …_"


def record_limit(max_record_chars: int | None, max_message_chars: int) -> int:
    """The cap for one record's text: the one given, else a few messages' worth.

    Raises:
        ValueError: The cap leaves no room for text around the notice.

    Example:
        >>> record_limit(None, 4000)
        12000
        >>> record_limit(50_000, 4000)
        50000
    """
    limit = (
        max(MIN_RECORD_CHARS, DEFAULT_RECORD_MESSAGES * max_message_chars)
        if max_record_chars is None
        else int(max_record_chars)
    )
    if limit < MIN_RECORD_CHARS:
        raise ValueError(
            f"max_record_chars={limit} is too small: at least {MIN_RECORD_CHARS} "
            "characters are needed to show the head and tail of a long record"
        )
    return limit


def cap_text(text: str, max_chars: int) -> str:
    """``text``, or its head and tail when it is longer than ``max_chars``.

    The middle is replaced by one line saying how many lines and characters
    were left out. Cuts fall at line ends where the lines are short enough,
    else where :func:`~ppe_slacklog.chunking.safe_cut` allows (never inside
    a character, an escaped entity or a run of backticks). A code block cut
    open is closed before the notice and reopened after it, so the notice
    reads as text and both halves render as code. The tail (the end of a
    traceback: the exception raised) gets half the room; the head gets the
    rest. The result is at most ``max_chars`` long.

    Raises:
        ValueError: ``max_chars`` is smaller than :data:`MIN_RECORD_CHARS`.

    Example:
        >>> log = "\\n".join(f"step {i}" for i in range(1, 1001))
        >>> print(cap_text(log, 200))
        step 1
        step 2
        step 3
        step 4
        step 5
        step 6
        step 7
        step 8
        step 9
        step 10
        ✂️ _… 983 lines (8,757 characters) left out here …_
        step 994
        step 995
        step 996
        step 997
        step 998
        step 999
        step 1000
        >>> len(cap_text("x" * 5_000_000, 12_000)) <= 12_000
        True
    """
    if len(text) <= max_chars:
        return text
    if max_chars < MIN_RECORD_CHARS:
        raise ValueError(f"max_chars={max_chars} is below {MIN_RECORD_CHARS}")
    size = len(text)
    # Room for the notice (its numbers at most as long as len(text)'s), the
    # fences that keep code blocks balanced and the line breaks around it.
    reserve = len(_notice(size, size)) + 2 * (len(_FENCE) + 1) + 2
    budget = max_chars - reserve

    # The tail first: it must hold the raised exception of a traceback.
    t0 = size - budget // 2
    line_start = text.find("\n", t0 - 1) + 1
    if 0 < line_start < size and size - line_start >= budget // 4:
        t = line_start
    else:  # a long last line: cut inside it
        t = safe_cut(text, t0)
        if t0 - t > min(_SLACK, budget // 8):
            t = t0
    head_room = budget - (size - t)
    line_end = text.rfind("\n", 0, head_room + 1)
    h = line_end if line_end >= head_room // 2 else safe_cut(text, head_room)

    # What was left out, not counting the line breaks at the seams.
    first = h + 1 if text.startswith("\n", h) else h
    last = t - 1 if text[t - 1] == "\n" and t - 1 >= first else t
    notice = _notice(text.count("\n", first, last) + 1, last - first)
    head, tail = text[:h], text[t:]
    if head.count(_FENCE) % 2:
        head += "\n" + _FENCE
    if text.count(_FENCE, 0, t) % 2:
        tail = _FENCE + "\n" + tail
    return f"{head}\n{notice}\n{tail}"
