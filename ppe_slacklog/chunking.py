"""Splitting a long text into Slack-sized messages.

Slack accepts up to 40,000 characters per message but advises at most 4,000
for readable messages. A long text (a traceback, a long log line) is split at
line boundaries; a code block that spans a split is closed at the end of one
message and reopened at the start of the next, so every part renders as code.
A line longer than a message is cut only where :func:`safe_cut` allows: never
inside a user-perceived character (a flag, an emoji sequence, a letter with
its accents), an escaped entity or a run of backticks.
"""

from __future__ import annotations

from typing import Final

import regex

__all__ = [
    "DEFAULT_MAX_CHARS",
    "SLACK_MAX_CHARS",
    "check_max_chars",
    "safe_cut",
    "split_text",
]

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

# Grapheme clusters (UAX #29) come from the ``regex`` package, which follows
# the Unicode releases: flags, ZWJ sequences, skin tones, keycaps, Hangul and
# Indic conjuncts are kept whole without tables of our own.
_CLUSTER: Final = regex.compile(r"\X")
# Segmenting looks at most this far back from a cut. A cluster longer than
# this (hundreds of combining marks) is cut inside as if it were text.
_WINDOW: Final = 512
# Positions that are a cluster boundary whatever the text around them:
# between two ASCII characters other than CR LF, and after a line feed (every
# rule that joins characters needs a non-ASCII one). Searched backwards.
_ANCHOR: Final = regex.compile(
    r"(?r)(?:(?<=[\x00-\x7f])(?=[\x00-\x7f])(?!(?<=\r)\n)|(?<=\n))"
)
_TWO_RI: Final = regex.compile(r"\p{Regional_Indicator}{2}")
_NOT_RI: Final = regex.compile(r"(?r)\P{Regional_Indicator}")
_BACKTICKS: Final = regex.compile(r"(?r)`+")
# What escape() produces: cutting one in half shows "&am" and "p;" instead.
_ENTITIES: Final = ("&amp;", "&lt;", "&gt;")


def _flag_aligned(text: str, pos: int, known: int) -> int:
    """``pos``, or one before it when it falls inside a flag.

    Flags are pairs of regional indicators counted from the start of their
    run (UAX #29, GB12/13), so which side of ``pos`` pairs up depends on how
    far back the run starts.
    """
    if pos <= known or _TWO_RI.match(text, pos - 1) is None:
        return pos
    other = _NOT_RI.search(text, known, pos)
    run_start = known if other is None else other.end()
    return pos - (pos - run_start) % 2


def _cluster_floor(text: str, i: int, known: int) -> int:
    """The last grapheme-cluster boundary at or before ``i``.

    ``known`` (``<= i``) is a boundary: segmenting never starts before it.
    """
    if i >= len(text) or i <= known:
        return min(i, len(text))
    before, after = text[i - 1], text[i]
    ascii_pair = before < "\x80" and after < "\x80" and before + after != "\r\n"
    if before == "\n" or ascii_pair:
        return i  # the common case, decided without segmenting
    lowest = max(known, i - _WINDOW)
    found = _ANCHOR.search(text, lowest, i)
    start = found.start() if found is not None else _flag_aligned(text, lowest, known)
    # A slice, so that the library cannot look back before the start (it
    # does for flags, which costs the whole run for every cluster).
    window = text[start : i + _WINDOW]
    for cluster in _CLUSTER.finditer(window):
        if start + cluster.end() >= i:
            end = start + cluster.end()
            return i if end == i else start + cluster.start()
    return i  # not reached: a cluster always ends at or after i < len(text)


def _entity_start(text: str, i: int) -> int:
    """Where the escaped entity around ``i`` starts; ``i`` when none is cut."""
    amp = text.rfind("&", max(0, i - 4), i)
    if amp >= 0 and any(
        text.startswith(entity, amp) and amp + len(entity) > i for entity in _ENTITIES
    ):
        return amp
    return i


def _backticks_start(text: str, i: int) -> int:
    """Where the run of backticks around ``i`` starts; ``i`` when none is cut."""
    if text[i : i + 1] != "`":
        return i
    run = _BACKTICKS.match(text, 0, i)
    return i if run is None else run.start()


def safe_cut(text: str, end: int, start: int = 0) -> int:
    """The last position after ``start``, at most ``end``, to cut ``text`` at.

    A cut there keeps every grapheme cluster (what a reader sees as one
    character: 🇯🇵, 👨‍👩‍👧‍👦, 👍🏽, 1️⃣, é written as e and an accent), every escaped
    entity (``&lt;``) and every run of backticks whole. When no such position
    lies after ``start`` and within a few hundred characters of ``end`` (one
    "character" of hundreds of combining marks), whole clusters win over the
    rest, and a cut at ``end`` is the last resort. ``start`` must be a
    cluster boundary (``0``, or an earlier cut).

    Example:
        >>> text = "ab🇯🇵🇺🇸cd"
        >>> safe_cut(text, 5), text[:safe_cut(text, 5)]
        (4, 'ab🇯🇵')
        >>> safe_cut("x &lt; y", 4)
        2
    """
    if end >= len(text):
        return len(text)
    # No further back than a cluster may reach (see _WINDOW): a run of
    # combining marks longer than that is cut like any text.
    lowest = max(start, end - _WINDOW)
    i = end
    while i > lowest:
        j = _backticks_start(text, _entity_start(text, _cluster_floor(text, i, start)))
        if j == i:
            return i
        i = j
    cluster = _cluster_floor(text, end, start)
    return cluster if cluster > lowest else end


def _slices(line: str, width: int) -> list[str]:
    """Cuts ``line`` into pieces of at most ``width``, where safe_cut allows."""
    pieces: list[str] = []
    start = 0
    while len(line) - start > width:
        end = safe_cut(line, start + width, start)
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
