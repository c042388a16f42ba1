"""Splitting long texts into Slack-sized messages."""

from __future__ import annotations

import pytest

from ppe_slacklog.chunking import split_text


def test_short_text_is_one_part() -> None:
    assert split_text("hello", 10) == ["hello"]


def test_splits_at_line_boundaries() -> None:
    text = "\n".join(f"line {i}" for i in range(100))
    parts = split_text(text, 50)
    assert all(len(p) <= 50 for p in parts)
    assert "\n".join(parts) == text


def test_code_blocks_stay_balanced() -> None:
    body = "\n".join(f"  frame {i}" for i in range(200))
    text = f"Error!\n```\n{body}\n```\nafter"
    parts = split_text(text, 300)
    assert len(parts) > 2
    assert all(len(p) <= 300 for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)
    rebuilt = "\n".join(parts).replace("\n```\n```", "")
    assert rebuilt == text


def test_overlong_single_line_is_cut_not_dropped() -> None:
    text = "x" * 1000
    parts = split_text(text, 100)
    assert "".join(parts) == text
    assert all(len(p) <= 100 for p in parts)


def test_too_small_limit_is_an_error() -> None:
    with pytest.raises(ValueError):
        split_text("x" * 100, 15)


def test_random_texts_keep_every_line_and_balance() -> None:
    import random

    rng = random.Random(7)
    for _ in range(200):
        lines = []
        for _ in range(rng.randint(1, 80)):
            kind = rng.random()
            if kind < 0.1 and (not lines or lines[-1] != "```"):
                lines.append("```")
            else:
                lines.append("y" * rng.randint(0, 90))
        if lines.count("```") % 2:
            lines.append("```")
        text = "\n".join(lines)
        limit = rng.randint(40, 400)
        parts = split_text(text, limit)
        assert all(len(p) <= limit for p in parts), limit
        assert all(p.count("```") % 2 == 0 for p in parts)
        if "```\n```" not in text:  # no empty block unless the text has one
            assert all(p.strip() != "```\n```" for p in parts)
        assert "".join(parts).replace("`", "").replace("\n", "") == text.replace(
            "`", ""
        ).replace("\n", "")


def test_long_lines_are_not_cut_inside_an_entity() -> None:
    text = "&lt;" * 300
    parts = split_text(text, 100)
    assert "".join(parts) == text
    assert all(p.startswith("&") and p.endswith(";") for p in parts)
