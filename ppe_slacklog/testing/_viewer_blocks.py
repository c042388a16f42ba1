"""Block Kit blocks -> safe HTML cards for the emulator's viewer.

Blocks arrive as whatever JSON a client sent, so every field is read
defensively: a missing or mistyped field renders as nothing rather than
breaking the page.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

from ._viewer_mrkdwn import (
    Resolver,
    link_html,
    markdown_html,
    mrkdwn_html,
    safe_href,
)

__all__ = ["blocks_html"]

#: Maps a ``slack_file`` object (``{"id": …}`` or ``{"url": …}``) to the
#: viewer's URL of that file and its name, ``None`` when unknown.
FileLookup = Callable[[Mapping[str, Any]], "tuple[str, str] | None"]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text_object(value: Any, resolve: Resolver) -> str:
    obj = _dict(value)
    text = _str(obj.get("text"))
    if obj.get("type") == "mrkdwn":
        return mrkdwn_html(text, resolve)
    return html.escape(text)


def _image(obj: Mapping[str, Any], files: FileLookup, css: str) -> str:
    alt = html.escape(_str(obj.get("alt_text")), quote=True)
    slack_file = obj.get("slack_file")
    if isinstance(slack_file, Mapping):
        found = files(slack_file)
        if found is None:
            return f'<span class="missing">[image: file not found] {alt}</span>'
        src = html.escape(found[0], quote=True)
    else:
        href = safe_href(_str(obj.get("image_url")))
        if href is None:
            return f'<span class="missing">[image] {alt}</span>'
        src = href
    return f'<img class="{css}" src="{src}" alt="{alt}" loading="lazy">'


def _rich_text(block: Mapping[str, Any], resolve: Resolver) -> str:
    # Only what people post from the composer: sections, lists, quotes, code.
    def inline(elements: list[Any]) -> str:
        out: list[str] = []
        for element in map(_dict, elements):
            kind = element.get("type")
            if kind == "text":
                piece = html.escape(_str(element.get("text")))
                style = _dict(element.get("style"))
                for flag, tag in (("bold", "b"), ("italic", "i"), ("strike", "s")):
                    if style.get(flag):
                        piece = f"<{tag}>{piece}</{tag}>"
                if style.get("code"):
                    piece = f"<code>{piece}</code>"
                out.append(piece)
            elif kind == "link":
                url = _str(element.get("url"))
                out.append(link_html(url, _str(element.get("text")) or url))
            elif kind == "user":
                uid = _str(element.get("user_id"))
                name = html.escape(resolve(uid) or uid)
                out.append(f'<span class="mention">@{name}</span>')
            elif kind == "emoji":
                out.append(html.escape(f":{_str(element.get('name'))}:"))
        return "".join(out)

    parts: list[str] = []
    for section in map(_dict, _list(block.get("elements"))):
        kind = section.get("type")
        body = inline(_list(section.get("elements")))
        if kind == "rich_text_preformatted":
            parts.append(f"<pre>{body}</pre>")
        elif kind == "rich_text_quote":
            parts.append(f"<blockquote>{body}</blockquote>")
        elif kind == "rich_text_list":
            tag = "ol" if section.get("style") == "ordered" else "ul"
            items = "".join(
                f"<li>{inline(_list(_dict(item).get('elements')))}</li>"
                for item in _list(section.get("elements"))
            )
            parts.append(f"<{tag}>{items}</{tag}>")
        else:
            parts.append(f"<div>{body}</div>")
    return f'<div class="bk-rich">{"".join(parts)}</div>'


def _table(block: Mapping[str, Any], resolve: Resolver) -> str:
    def cell(value: Any) -> str:
        obj = _dict(value)
        if obj.get("type") == "rich_text":
            return _rich_text(obj, resolve)
        return html.escape(_str(obj.get("text")))

    rows = "".join(
        "<tr>" + "".join(f"<td>{cell(c)}</td>" for c in _list(row)) + "</tr>"
        for row in _list(block.get("rows"))
    )
    return f'<table class="bk-table">{rows}</table>'


def _block(block: Mapping[str, Any], resolve: Resolver, files: FileLookup) -> str:
    kind = _str(block.get("type"))
    if kind == "header":
        text = html.escape(_str(_dict(block.get("text")).get("text")))
        return f'<div class="bk-header">{text}</div>'
    if kind == "divider":
        return '<hr class="bk-divider">'
    if kind == "section":
        parts = []
        if block.get("text"):
            text = _text_object(block.get("text"), resolve)
            parts.append(f'<div class="bk-text">{text}</div>')
        fields = [_text_object(f, resolve) for f in _list(block.get("fields"))]
        if fields:
            cells = "".join(f'<div class="bk-field">{f}</div>' for f in fields)
            parts.append(f'<div class="bk-fields">{cells}</div>')
        accessory = _dict(block.get("accessory"))
        if accessory.get("type") == "image":
            parts.append(_image(accessory, files, "bk-thumb"))
        return f'<div class="bk-section">{"".join(parts)}</div>'
    if kind == "context":
        elements = []
        for element in map(_dict, _list(block.get("elements"))):
            if element.get("type") == "image":
                elements.append(_image(element, files, "bk-icon"))
            else:
                elements.append(f"<span>{_text_object(element, resolve)}</span>")
        return f'<div class="bk-context">{"".join(elements)}</div>'
    if kind == "image":
        title = html.escape(_str(_dict(block.get("title")).get("text")))
        caption = f'<div class="bk-title">{title}</div>' if title else ""
        return f'<figure class="bk-image">{caption}{_image(block, files, "")}</figure>'
    if kind == "markdown":
        text = markdown_html(_str(block.get("text")))
        return f'<div class="bk-markdown">{text}</div>'
    if kind == "rich_text":
        return _rich_text(block, resolve)
    if kind == "table":
        return _table(block, resolve)
    return f'<div class="missing">[{html.escape(kind or "unknown")} block]</div>'


def blocks_html(blocks: Any, resolve: Resolver, files: FileLookup) -> str:
    """Render a message's ``blocks`` as one card.

    Args:
        blocks: The blocks as stored (a list of dicts; anything else is
            shown as nothing).
        resolve: Maps user and channel IDs to names for mentions.
        files: Maps a ``slack_file`` object to the viewer URL of the file.

    Returns:
        ``<div class="card">…</div>``.

    Example:
        >>> blocks_html(
        ...     [{"type": "header", "text": {"type": "plain_text", "text": "Run <1>"}}],
        ...     lambda _: None,
        ...     lambda _: None,
        ... )
        '<div class="card"><div class="bk-header">Run &lt;1&gt;</div></div>'
    """
    parts = [_block(_dict(b), resolve, files) for b in _list(blocks)]
    return f'<div class="card">{"".join(parts)}</div>'
