"""How Slack rewrites the text of a message it stores.

The Web API returns stored text, not the text that was sent: bare links come
back wrapped in angle brackets (``<https://...>``) and some emoji come back
as their ``:shortcode:``. A client that compares texts to recognise its own
messages breaks on that, so the emulator does the same rewriting for links
and for the emoji that ppe_slacklog's default texts use.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["EMOJI_SHORTCODES", "stored_text"]

#: Emoji (as sent) -> the shortcode Slack returns for them.
EMOJI_SHORTCODES: Final[dict[str, str]] = {
    "\u2705": ":white_check_mark:",  # ✅
    "\u274c": ":x:",  # ❌
    "\u26a0\ufe0f": ":warning:",  # ⚠️
    "\u26a0": ":warning:",  # ⚠ without the emoji variation selector
    "\u2139\ufe0f": ":information_source:",  # ℹ️
    "\u2139": ":information_source:",
    "\U0001f4ce": ":paperclip:",  # 📎
    "\U0001f3c3": ":runner:",  # 🏃 (the start message: a thread's parent)
    "\U0001f501": ":repeat:",  # 🔁
    "\U0001f525": ":fire:",  # 🔥
    "\U0001f50d": ":mag:",  # 🔍
    "\u2702\ufe0f": ":scissors:",  # ✂️
    "\u2702": ":scissors:",
}

# A bare http(s) link: not already inside <...> (Slack's own link syntax).
# Trailing punctuation ends a sentence, not the link.
_BARE_LINK: Final = re.compile(
    r"(?<![<|\w])(https?://(?:\([^\s<>|()]*\)|[^\s<>|()])*"
    r"(?:\([^\s<>|()]*\)|[^\s<>|.,;:!?()]))"
)
_SLACK_LINK: Final = re.compile(r"<[^<>]*>")
_EMOJI: Final = re.compile(
    "|".join(re.escape(e) for e in sorted(EMOJI_SHORTCODES, key=len, reverse=True))
)


def _links(text: str) -> str:
    # Leave <...> spans (links, mentions) untouched; wrap links elsewhere.
    parts: list[str] = []
    last = 0
    for span in _SLACK_LINK.finditer(text):
        parts.append(_BARE_LINK.sub(r"<\1>", text[last : span.start()]))
        parts.append(span.group(0))
        last = span.end()
    parts.append(_BARE_LINK.sub(r"<\1>", text[last:]))
    return "".join(parts)


def stored_text(text: str) -> str:
    """The text Slack's Web API returns for a message sent as ``text``.

    Example:
        >>> stored_text("✅ done, see https://example.com/run")
        ':white_check_mark: done, see <https://example.com/run>'
        >>> stored_text("<https://example.com|run> ⚠️")
        '<https://example.com|run> :warning:'
        >>> stored_text("(see https://example.com/a_(b))")
        '(see <https://example.com/a_(b)>)'
    """
    return _EMOJI.sub(lambda m: EMOJI_SHORTCODES[m.group(0)], _links(text))
