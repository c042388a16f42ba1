"""The viewer's static assets: page shell, stylesheet and script.

Served from the emulator itself (no CDN, works offline). The script and the
stylesheet are separate files so that the page's Content-Security-Policy can
forbid inline scripts: even a rendering bug could not run a message's text.
"""

from __future__ import annotations

import html
from typing import Final

__all__ = ["CSP", "SCRIPT", "STYLE", "page_html"]

#: No inline script or style, nothing from another origin except images
#: that a Block Kit ``image_url`` names.
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: http: https:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

STYLE: Final = """\
:root { --fg: #1d1c1d; --muted: #616061; --line: #e2e2e2; --accent: #1264a3;
  --side: #3f0e40; --side-fg: #d1c4d2; --code-bg: #f8f8f8; --mention: #e8f5fa; }
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; }
body { font: 15px/1.46 -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
  "Noto Sans", "DejaVu Sans", sans-serif; color: var(--fg); display: flex; }
nav { width: 220px; flex: none; background: var(--side); color: var(--side-fg);
  padding: 12px 0; overflow-y: auto; }
nav h1 { font-size: 16px; color: #fff; margin: 0 16px 12px; }
nav a { display: flex; justify-content: space-between; padding: 3px 16px;
  color: var(--side-fg); text-decoration: none; }
nav a.current { background: #1164a3; color: #fff; }
nav a .count { opacity: .7; font-size: 12px; }
nav .status { margin: 16px; font-size: 12px; opacity: .8; }
main { flex: 1; overflow-y: auto; padding: 0 0 24px; }
main > header { position: sticky; top: 0; background: #fff; z-index: 1;
  border-bottom: 1px solid var(--line); padding: 10px 20px; font-weight: 700; }
main > header .flags { font-weight: 400; color: var(--muted); margin-left: 8px; }
.empty { color: var(--muted); padding: 20px; }
article.msg { display: flex; gap: 8px; padding: 6px 20px; }
article.msg:hover { background: #f8f8f8; }
.avatar { width: 36px; height: 36px; border-radius: 4px; background: #2eb67d;
  color: #fff; font-weight: 700; display: flex; align-items: center;
  justify-content: center; flex: none; }
.thread .avatar { width: 28px; height: 28px; font-size: 12px; }
.body { min-width: 0; flex: 1; }
.meta .author { font-weight: 700; }
.meta .app { font-size: 10px; background: #e8e8e8; color: var(--muted);
  border-radius: 2px; padding: 0 3px; margin-left: 4px; vertical-align: 2px; }
.meta time { color: var(--muted); font-size: 12px; margin-left: 6px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.text.deleted, .missing { color: var(--muted); font-style: italic; }
code { font: 12px/1.5 Menlo, Consolas, "DejaVu Sans Mono", monospace;
  background: var(--code-bg); border: 1px solid var(--line); border-radius: 3px;
  padding: 1px 3px; color: #e01e5a; }
pre { font: 12px/1.5 Menlo, Consolas, "DejaVu Sans Mono", monospace;
  background: var(--code-bg); border: 1px solid var(--line); border-radius: 4px;
  padding: 8px; margin: 4px 0; white-space: pre-wrap; overflow-wrap: anywhere; }
blockquote { margin: 2px 0; padding-left: 10px; border-left: 4px solid #ddd;
  white-space: pre-wrap; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.mention { background: var(--mention); color: var(--accent); border-radius: 3px;
  padding: 0 2px; }
.edited { color: var(--muted); font-size: 12px; }
details.edits summary { cursor: pointer; list-style: none; display: inline; }
details.edits summary::-webkit-details-marker { display: none; }
details.edits ol { margin: 4px 0; padding-left: 20px; color: var(--muted);
  border-left: 2px solid var(--line); }
details.edits li { margin: 4px 0; }
.broadcast { color: var(--muted); font-size: 12px; }
.files { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 4px; }
.files figure { margin: 0; }
.files img { max-width: 480px; max-height: 360px; border: 1px solid var(--line);
  border-radius: 6px; display: block; }
.files figcaption { font-size: 12px; color: var(--muted); }
.file { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
.thread { margin: 0 20px 8px 64px; border-left: 2px solid var(--line); }
.thread > .replies-head { color: var(--accent); font-size: 13px; font-weight: 700;
  padding: 2px 12px; }
.thread article.msg { padding-left: 12px; }
.card { border-left: 4px solid #ddd; padding: 2px 0 2px 12px; margin: 2px 0;
  max-width: 720px; }
.bk-header { font-size: 18px; font-weight: 700; margin: 4px 0; }
.bk-section { display: flex; gap: 12px; margin: 4px 0; flex-wrap: wrap; }
.bk-text { white-space: pre-wrap; flex: 1 1 100%; }
.bk-fields { display: grid; grid-template-columns: 1fr 1fr; gap: 4px 16px;
  flex: 1; white-space: pre-wrap; }
.bk-thumb { width: 72px; height: 72px; object-fit: cover; border-radius: 4px; }
.bk-context { color: var(--muted); font-size: 12px; display: flex; gap: 6px;
  align-items: center; white-space: pre-wrap; margin: 4px 0; }
.bk-icon { width: 16px; height: 16px; }
.bk-divider { border: 0; border-top: 1px solid var(--line); margin: 8px 0; }
.bk-image { margin: 4px 0; }
.bk-image img { max-width: 480px; max-height: 360px; border-radius: 6px;
  border: 1px solid var(--line); display: block; }
.bk-title { font-size: 13px; color: var(--muted); }
.bk-markdown h3 { font-size: 16px; margin: 6px 0 2px; }
.bk-markdown p { margin: 4px 0; }
.bk-table { border-collapse: collapse; font-size: 13px; }
.bk-table td { border: 1px solid var(--line); padding: 2px 8px; }
"""

SCRIPT: Final = """\
"use strict";
// Polls the state once a second and swaps in the new rendering, keeping the
// scroll position (or following the bottom, like Slack, when it was there)
// and which edit histories are open.
(function () {
  const main = document.getElementById("main");
  const nav = document.getElementById("channels");
  const status = document.getElementById("status");
  let version = document.body.dataset.version;
  const channel = document.body.dataset.channel;

  function atBottom() {
    return main.scrollHeight - main.clientHeight - main.scrollTop < 40;
  }

  // Whether the reader is at the bottom (set by their scrolling, not by
  // content growing under them, e.g. an image that finished loading).
  let following = true;
  main.addEventListener("scroll", function () { following = atBottom(); });

  function apply(state) {
    const follow = following;
    const top = main.scrollTop;
    const open = Array.from(main.querySelectorAll("details[open]"))
      .map(function (d) { return d.id; });
    main.innerHTML = state.main;
    nav.innerHTML = state.channels;
    open.forEach(function (id) {
      const d = document.getElementById(id);
      if (d) { d.open = true; }
    });
    main.scrollTop = follow ? main.scrollHeight : top;
    if (follow) { followImages(); }
    version = state.version;
    document.body.dataset.version = version;
    document.body.dataset.updates = String(
      Number(document.body.dataset.updates || "0") + 1);
  }

  function poll() {
    const url = "/viewer/state.json?channel=" + encodeURIComponent(channel) +
      "&version=" + encodeURIComponent(version);
    fetch(url, {cache: "no-store"})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (state) {
        if (state.version !== version) { apply(state); }
        status.textContent = "live \\u00b7 " + new Date().toLocaleTimeString();
      })
      .catch(function () {
        status.textContent = "emulator not reachable, retrying";
      })
      .then(function () { window.setTimeout(poll, 1000); });
  }

  // Images load after the text: keep following the bottom as they grow.
  function followImages() {
    main.querySelectorAll("img").forEach(function (img) {
      if (!img.complete) {
        img.addEventListener("load", function () {
          if (following) { main.scrollTop = main.scrollHeight; }
        }, {once: true});
      }
    });
  }

  main.scrollTop = main.scrollHeight;
  followImages();
  window.setTimeout(poll, 1000);
})();
"""


def page_html(title: str, channel: str, version: str, nav: str, main: str) -> str:
    """The whole page, with the state rendered in (it reads well without JS).

    Args:
        title: Page title (escaped here).
        channel: Name of the shown channel, for the script's polls.
        version: Version of the rendered state.
        nav: Channel list HTML (already safe).
        main: Channel view HTML (already safe).

    Example:
        >>> "<title>a&amp;b</title>" in page_html("a&b", "general", "1", "", "")
        True
    """
    attr = html.escape(channel, quote=True)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        '<link rel="stylesheet" href="/viewer/viewer.css"></head>'
        f'<body data-channel="{attr}" data-version="{html.escape(version)}">'
        f'<nav><h1>Slack emulator</h1><div id="channels">{nav}</div>'
        '<div class="status" id="status">loaded</div></nav>'
        f'<main id="main">{main}</main>'
        '<script src="/viewer/viewer.js"></script></body></html>\n'
    )
