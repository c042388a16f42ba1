"""Slack texts -> safe HTML for the emulator's viewer.

Two dialects: Slack's own *mrkdwn* (message ``text``, ``mrkdwn`` text
objects of blocks) and the standard Markdown of the ``markdown`` block.
Every character of the input reaches the output through :func:`html.escape`
(or as a fixed tag this module writes), so a message cannot become markup or
script in the viewer, whatever it contains.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Final

__all__ = [
    "Resolver",
    "link_html",
    "markdown_html",
    "mrkdwn_html",
    "safe_href",
    "slack_unescape",
]

#: How an ID in ``<@U…>`` / ``<#C…>`` becomes a name (``None``: unknown).
Resolver = Callable[[str], "str | None"]

# Slack asks senders to escape exactly these three (docs.slack.dev,
# "Formatting text": escaping); one pass, so "&amp;lt;" stays "&lt;".
_ENTITY: Final = re.compile(r"&(lt|gt|amp);")
_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&"}
_FENCE: Final = re.compile(r"```(.*?)```", re.DOTALL)
_QUOTE: Final = re.compile(r"^(?:>|&gt;) ?")
_QUOTE_REST: Final = re.compile(r"^(?:>>>|&gt;&gt;&gt;) ?")
# Slack's emphasis needs a non-word character (or nothing) around it, so
# snake_case_names and 2*3*4 stay as they are.
_INLINE: Final = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?P<angle><[^<>\n]+>)"
    r"|(?P<url>\bhttps?://[^\s<>]+[^\s<>.,;:!?'\")\]])"
    r"|(?P<b>(?<!\w)\*(?!\s)[^*\n]+?(?<!\s)\*(?!\w))"
    r"|(?P<i>(?<!\w)_(?!\s)[^_\n]+?(?<!\s)_(?!\w))"
    r"|(?P<s>(?<!\w)~(?!\s)[^~\n]+?(?<!\s)~(?!\w))"
)
_EMPHASIS: Final = {"b": "b", "i": "i", "s": "s"}
_SAFE_SCHEMES: Final = ("http://", "https://", "mailto:")


def slack_unescape(text: str) -> str:
    """Undo Slack's three entities (``&lt;`` ``&gt;`` ``&amp;``), nothing else.

    Example:
        >>> slack_unescape("in &lt;module&gt; &amp;amp;")
        'in <module> &amp;'
    """
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def _text(raw: str) -> str:
    return html.escape(slack_unescape(raw))


def safe_href(url: str) -> str | None:
    """``url`` escaped for an ``href``, or ``None`` unless http(s) or mailto.

    Example:
        >>> safe_href("https://x.org/?a=1&b=2")
        'https://x.org/?a=1&amp;b=2'
        >>> safe_href("javascript:alert(1)") is None
        True
    """
    if not url.lower().startswith(_SAFE_SCHEMES):
        return None
    return html.escape(url, quote=True)


def link_html(url: str, label: str) -> str:
    """A link to ``url`` labelled ``label``; only the label for unsafe schemes.

    Example:
        >>> link_html("javascript:x", "<b>")
        '&lt;b&gt;'
    """
    href = safe_href(url)
    if href is None:
        return html.escape(label)
    return (
        f'<a href="{href}" target="_blank" rel="noopener noreferrer">'
        f"{html.escape(label)}</a>"
    )


def _angle(inner: str, resolve: Resolver) -> str:
    target, _, label = inner.partition("|")
    label = slack_unescape(label)
    if target.startswith("@"):
        name = label or resolve(target[1:]) or target[1:]
        return f'<span class="mention">@{html.escape(name.lstrip("@"))}</span>'
    if target.startswith("#"):
        name = label or resolve(target[1:]) or target[1:]
        return f'<span class="mention">#{html.escape(name.lstrip("#"))}</span>'
    if target.startswith("!"):
        command = target[1:]
        if command.startswith(("subteam^", "date^")):
            shown = label or command.split("^", 1)[0]
        else:
            shown = label or f"@{command}"
        cls = "mention" if not command.startswith("date^") else "date"
        return f'<span class="{cls}">{html.escape(shown)}</span>'
    url = slack_unescape(target)
    if url.lower().startswith(_SAFE_SCHEMES):
        shown = label or (url[7:] if url.lower().startswith("mailto:") else url)
        return link_html(url, shown)
    # Not Slack syntax (e.g. a literal "<script>"): shown as typed.
    return html.escape(f"<{slack_unescape(inner)}>")


def _inline(raw: str, resolve: Resolver) -> str:
    out: list[str] = []
    last = 0
    for match in _INLINE.finditer(raw):
        out.append(_text(raw[last : match.start()]))
        last = match.end()
        kind, token = match.lastgroup, match.group(0)
        if kind == "code":
            out.append(f"<code>{_text(token[1:-1])}</code>")
        elif kind == "angle":
            out.append(_angle(token[1:-1], resolve))
        elif kind == "url":
            url = slack_unescape(token)
            out.append(link_html(url, url))
        else:
            tag = _EMPHASIS[str(kind)]
            out.append(f"<{tag}>{_inline(token[1:-1], resolve)}</{tag}>")
    out.append(_text(raw[last:]))
    return "".join(out)


def _lines(raw: str, resolve: Resolver) -> str:
    """Lines of text outside code blocks: quotes become blockquotes."""
    out: list[str] = []
    quoted: list[str] = []
    lines = raw.split("\n")

    def close_quote() -> None:
        if quoted:
            body = "\n".join(_inline(q, resolve) for q in quoted)
            out.append(f"<blockquote>{body}</blockquote>")
            quoted.clear()

    for number, line in enumerate(lines):
        rest = _QUOTE_REST.match(line)
        if rest:
            # ">>>" quotes everything after it.
            quoted.extend([line[rest.end() :], *lines[number + 1 :]])
            break
        quote = _QUOTE.match(line)
        if quote:
            quoted.append(line[quote.end() :])
            continue
        close_quote()
        out.append(_inline(line, resolve))
    close_quote()
    # A newline between two lines, none next to a block: the blocks break
    # the line themselves (the page shows text with white-space: pre-wrap).
    html_out = ""
    for piece in out:
        beside_block = html_out.endswith("</blockquote>") or piece.startswith(
            "<blockquote>"
        )
        if html_out and not beside_block:
            html_out += "\n"
        html_out += piece
    return html_out


def _no_resolver(_: str) -> str | None:
    return None


def mrkdwn_html(text: str, resolve: Resolver = _no_resolver) -> str:
    """Render Slack mrkdwn as HTML, the way Slack's client shows it.

    Handles ``*bold*``, ``_italic_``, ``~strike~``, ```code```, fenced code
    blocks, ``>`` and ``>>>`` quotes, ``<url|label>`` links, bare links,
    ``<@U…>`` / ``<#C…>`` / ``<!here>`` mentions and ``&lt; &gt; &amp;``.
    Emoji shortcodes stay as typed. Everything else is text.

    Args:
        text: The message text as sent to Slack.
        resolve: Maps a user or channel ID to its name for mentions.

    Returns:
        HTML (meant for an element with ``white-space: pre-wrap``).

    Example:
        >>> mrkdwn_html("*done* in &lt;module&gt; <https://x.org|run> <@U1>")
        '<b>done</b> in &lt;module&gt; <a href="https://x.org" target="_blank" \
rel="noopener noreferrer">run</a> <span class="mention">@U1</span>'
        >>> mrkdwn_html("<script>alert(1)</script>")
        '&lt;script&gt;alert(1)&lt;/script&gt;'
    """
    out: list[str] = []
    last = 0
    for fence in _FENCE.finditer(text):
        before = text[last : fence.start()]
        if before.endswith("\n"):
            before = before[:-1]
        if before:
            out.append(_lines(before, resolve))
        code = fence.group(1)
        code = code[1:] if code.startswith("\n") else code
        code = code[:-1] if code.endswith("\n") else code
        out.append(f"<pre>{_text(code)}</pre>")
        last = fence.end()
        if text.startswith("\n", last):
            last += 1
    if text[last:] or not out:
        out.append(_lines(text[last:], resolve))
    return "".join(out)


# --------------------------------------------------------------- Markdown

_MD_INLINE: Final = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?P<link>\[(?P<label>[^\]\n]+)\]\((?P<href>[^)\s]+)\))"
    r"|(?P<auto><https?://[^<>\s]+>)"
    r"|(?P<url>\bhttps?://[^\s<>]+[^\s<>.,;:!?'\")\]])"
    r"|(?P<b>\*\*(?!\s)[^\n]+?(?<!\s)\*\*|__(?!\s)[^\n]+?(?<!\s)__)"
    r"|(?P<s>~~(?!\s)[^\n]+?(?<!\s)~~)"
    r"|(?P<i>(?<![\w*])\*(?![\s*])[^*\n]+?(?<!\s)\*(?!\w)"
    r"|(?<!\w)_(?!\s)[^_\n]+?(?<!\s)_(?!\w))"
)
_MD_HEADING: Final = re.compile(r"^(#{1,6})\s+(.*)$")
_MD_BULLET: Final = re.compile(r"^\s*[-*+]\s+(.*)$")
_MD_NUMBER: Final = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_MD_RULE: Final = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")


def _md_inline(raw: str) -> str:
    out: list[str] = []
    last = 0
    for match in _MD_INLINE.finditer(raw):
        out.append(html.escape(raw[last : match.start()]))
        last = match.end()
        kind, token = match.lastgroup, match.group(0)
        if kind == "code":
            out.append(f"<code>{html.escape(token[1:-1])}</code>")
        elif kind == "link":
            out.append(link_html(match.group("href"), match.group("label")))
        elif kind == "auto":
            out.append(link_html(token[1:-1], token[1:-1]))
        elif kind == "url":
            out.append(link_html(token, token))
        elif kind == "b":
            out.append(f"<b>{_md_inline(token[2:-2])}</b>")
        elif kind == "s":
            out.append(f"<s>{_md_inline(token[2:-2])}</s>")
        else:
            out.append(f"<i>{_md_inline(token[1:-1])}</i>")
    out.append(html.escape(raw[last:]))
    return "".join(out)


def markdown_html(text: str) -> str:
    """Render the standard Markdown of a ``markdown`` block as HTML.

    A practical subset: headings, paragraphs, ``-``/``1.`` lists, ``>``
    quotes, rules, fenced code, ``**bold**``, ``*italic*``, ``~~strike~~``,
    ```code```, ``[label](url)`` and bare links.

    Example:
        >>> markdown_html("# Run\\n**loss** 0.1\\n- a\\n- b")
        '<h3>Run</h3><p><b>loss</b> 0.1</p><ul><li>a</li><li>b</li></ul>'
    """
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""
    quoted: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        nonlocal list_tag
        if paragraph:
            out.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()
        if items:
            body = "".join(f"<li>{item}</li>" for item in items)
            out.append(f"<{list_tag}>{body}</{list_tag}>")
            items.clear()
        if quoted:
            out.append("<blockquote>" + "<br>".join(quoted) + "</blockquote>")
            quoted.clear()

    for line in text.split("\n"):
        if code is not None:
            if line.strip().startswith("```"):
                out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.strip().startswith("```"):
            flush()
            code = []
            continue
        heading = _MD_HEADING.match(line)
        bullet = _MD_BULLET.match(line)
        listed = bullet or _MD_NUMBER.match(line)
        if not line.strip():
            flush()
        elif _MD_RULE.match(line):
            flush()
            out.append("<hr>")
        elif heading:
            flush()
            out.append(f"<h3>{_md_inline(heading.group(2))}</h3>")
        elif listed is not None:
            tag = "ul" if bullet else "ol"
            if paragraph or quoted or (items and tag != list_tag):
                flush()
            list_tag = tag
            items.append(_md_inline(listed.group(1)))
        elif line.lstrip().startswith(">"):
            if paragraph or items:
                flush()
            quoted.append(_md_inline(line.lstrip()[1:].lstrip()))
        else:
            if items or quoted:
                flush()
            paragraph.append(_md_inline(line))
    if code is not None:
        out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
    flush()
    return "".join(out)
