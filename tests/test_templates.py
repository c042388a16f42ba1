"""Template rendering: ppe's semantics, made safe."""

from __future__ import annotations

import uuid
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from pytorch_pfn_extras.training.extensions import slack as ppe_slack

from ppe_slacklog import TemplateWarning, escape
from ppe_slacklog.templates import (
    default_end_msg,
    default_error_msg,
    default_msg,
    default_start_msg,
    render_template,
    safe_format,
    slack_default,
    template_fields,
)


def _unique() -> str:
    # Warnings are given once per template and problem, process-wide.
    return uuid.uuid4().hex[:8]


def _render(template: Any, **kw: Any) -> str:
    args: dict[str, Any] = {
        "event": "trigger",
        "manager": SimpleNamespace(epoch=2, iteration=20),
        "context": None,
        "default": "Epoch #2",
        "observations": {},
    }
    args.update(kw)
    return render_template(template, **args)


def test_escape() -> None:
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_format_string_sees_documented_names_and_observations() -> None:
    text = _render(
        "{default}: {manager.epoch} {context[k]} {val/loss:.2f}",
        context={"k": "v"},
        observations={"val/loss": 0.4567},
    )
    assert text == "Epoch #2: 2 v 0.46"


def test_missing_key_is_marked_and_warned_once() -> None:
    key = f"val/{_unique()}"
    with pytest.warns(TemplateWarning, match=key) as caught:
        first = safe_format(f"x={{{key}}}", {})
        second = safe_format(f"x={{{key}}}", {})
    assert first == second == f"x=[missing: {key}]"
    assert len(caught) == 1


def test_missing_attribute_and_index() -> None:
    name = _unique()
    with pytest.warns(TemplateWarning):
        text = safe_format(
            "{m.nope} {d[" + name + "]}", {"m": SimpleNamespace(), "d": {}}
        )
    assert text == f"[missing: m.nope] [missing: d[{name}]]"


def test_bad_format_spec_keeps_value() -> None:
    with pytest.warns(TemplateWarning, match="format spec"):
        text = safe_format("{v:.2f}" + _unique(), {"v": "text"})
    assert text.startswith("text[bad format: .2f]")


def test_malformed_template_is_sent_as_written() -> None:
    template = "{unclosed " + _unique()
    with pytest.warns(TemplateWarning, match="malformed"):
        assert safe_format(template, {}) == template


def test_callable_templates() -> None:
    assert _render(lambda m, c: f"<{m.epoch}>") == "<2>"
    err = ValueError("bad")
    text = _render(lambda m, e, c: f"{type(e).__name__}", event="error", error=err)
    assert text == "ValueError"


def test_raising_callable_falls_back_to_default() -> None:
    def broken(manager: Any, context: Any) -> str:
        raise RuntimeError(_unique())

    with pytest.warns(TemplateWarning, match="callable raised RuntimeError"):
        text = _render(broken)
    assert text.startswith("Epoch #2\n[missing: the callable raised RuntimeError")


def test_values_are_escaped_but_template_is_trusted() -> None:
    text = _render("<@U1> {note}", observations={"note": "<!here>"})
    assert text == "<@U1> &lt;!here&gt;"


def test_defaults_match_ppe() -> None:
    manager = SimpleNamespace(epoch=4)
    assert default_msg(manager, None) == ppe_slack._default_msg(manager, None)
    assert default_start_msg(manager, None) == ppe_slack._default_start_msg(
        manager, None
    )
    assert default_end_msg(manager, None) == ppe_slack._default_end_msg(manager, None)
    try:
        raise KeyError("k")
    except KeyError as exc:
        ours = default_error_msg(manager, exc, None)
        theirs = ppe_slack._default_error_msg(manager, exc, None)
    # ppe 0.9.0 means this text but, through implicit string concatenation,
    # uses its header as the separator of the traceback frames: with one
    # frame only the frame survives. We send the text it was written to send.
    header = "❌ *Error during training. "
    assert ours.startswith(header)
    assert "*\nKeyError: 'k'\nTraceback:\n```\n" in ours
    assert theirs.startswith('File "')
    assert ours.endswith(theirs)


def test_slack_default_escapes_untrusted_parts() -> None:
    try:
        raise ValueError("<!channel>")
    except ValueError as exc:
        text = slack_default("error", None, None, exc)
    assert "ValueError: &lt;!channel&gt;" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert slack_default("trigger", SimpleNamespace(epoch=1), None, None) == (
            "Epoch #1"
        )


def test_conversions_escape_and_both_paths_agree() -> None:
    err = ValueError("bad <!channel>")
    variables = {"error": err, "s": "a<b", "c": object()}
    template = "{error!r} {error!s} {s:.3} {c.__class__}"
    fast = safe_format(template, variables)
    with pytest.warns(TemplateWarning):
        slow = safe_format(template + " {" + _unique() + "}", variables)
    assert fast == (
        "ValueError('bad &lt;!channel&gt;') bad &lt;!channel&gt; a&lt;b "
        "&lt;class 'object'&gt;"
    )
    assert slow.startswith(fast)


def test_wrapper_internals_are_not_reachable() -> None:
    with pytest.warns(TemplateWarning):
        text = safe_format("{c._v}" + _unique(), {"c": object()})
    assert text.startswith("[missing: c._v]")


def test_template_fields() -> None:
    fields = template_fields("it {manager.iteration} {val/loss:.3f} {manager.epoch}")
    assert fields is not None
    assert fields.names == ("manager", "val/loss")
    assert fields.manager_attrs == {"iteration", "epoch"}
    indexed = template_fields("{manager.observation[loss]} {manager}")
    assert indexed is not None and indexed.manager_attrs is None
    for general in ["{x!r}", "{0}", "{}", "{x:{w}}", "{x", "a}"]:
        assert template_fields(general) is None, general


def test_plain_templates_render_as_the_general_path() -> None:
    # Plain templates take a fast path; a missing name sends the same
    # template through the general formatter: both must agree.
    variables = {
        "s": "a<b>&",
        "n": 3,
        "f": 0.123456,
        "b": True,
        "o": object(),
        "d": {"k": "<!here>"},
        "ns": SimpleNamespace(out="<x>"),
    }
    template = "{s} {s:.3} {n:03d} {f:.2f} {b} {o.__class__} {d[k]} {ns.out} {n}"
    fast = safe_format(template, variables, more={"s": "ignored", "m": "<m>"})
    with pytest.warns(TemplateWarning):
        slow = safe_format(template + " {" + _unique() + "}", variables)
    assert fast == (
        "a&lt;b&gt;&amp; a&lt;b 003 0.12 True &lt;class 'object'&gt; "
        "&lt;!here&gt; &lt;x&gt; 3"
    )
    assert slow.startswith(fast)
    assert safe_format("{m}", {}, more={"m": "<m>"}) == "&lt;m&gt;"
    trusted = safe_format("{default}", {}, trusted={"default": "<@U1>"})
    assert trusted == "<@U1>"
