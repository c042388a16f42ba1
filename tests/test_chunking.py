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


# -- grapheme clusters (issue 9, item 10) --------------------------------------

# What a reader sees as one character, but several code points.
CLUSTERS = {
    "flags": "🇯🇵🇺🇸🇫🇷",
    "zwj family": "👨\u200d👩\u200d👧\u200d👦",
    "skin tone": "👍🏽",
    "keycap": "1\ufe0f\u20e3",
    "combining accents": "e\u0301\u0302",
    "hangul jamo": "\u1100\u1161\u11a8",
}


def _boundaries(text: str) -> set[int]:
    import regex

    return {m.end() for m in regex.finditer(r"\X", text)} | {0}


def _cuts(parts: list[str]) -> list[int]:
    cuts, pos = [], 0
    for part in parts[:-1]:
        pos += len(part)
        cuts.append(pos)
    return cuts


@pytest.mark.parametrize("name", list(CLUSTERS))
@pytest.mark.parametrize(
    "filler", ["x", "日", "🇯🇵", "é"], ids=["ascii", "cjk", "flag", "accent"]
)
def test_long_lines_are_cut_between_characters_only(name: str, filler: str) -> None:
    unit = CLUSTERS[name]
    limit = 40  # room for 32 characters per slice
    # Shifting the text by one code point at a time puts a cut at every
    # position inside the clusters, after ASCII and after other clusters.
    for shift in range(len(unit) + 4):
        text = "a" * shift + filler * 3 + unit * 30
        parts = split_text(text, limit)
        assert "".join(parts) == text
        assert all(len(p) <= limit for p in parts)
        assert set(_cuts(parts)) <= _boundaries(text), (name, shift)
        if name == "flags":
            for part in parts:  # halves of a flag would pair up wrongly
                assert sum(0x1F1E6 <= ord(c) <= 0x1F1FF for c in part) % 2 == 0


def test_a_cut_inside_a_line_of_flags_keeps_every_flag() -> None:
    flags = "🇯🇵🇺🇸🇫🇷🇩🇪"
    text = "Flags: " + flags * 200
    parts = split_text(text, 101)  # odd room: the naive cut lands mid-flag
    assert "".join(parts) == text
    import regex

    shown = {"🇯🇵", "🇺🇸", "🇫🇷", "🇩🇪"}
    for part in parts[1:]:  # each part, read alone, shows the same flags
        assert set(regex.findall(r"\X", part)) <= shown
    assert set(_cuts(parts)) <= _boundaries(text)


def test_one_cluster_longer_than_a_message_is_still_cut() -> None:
    zalgo = "a" + "\u0301" * 500  # one cluster of 501 code points
    parts = split_text("x " + zalgo + " y", 100)
    assert "".join(parts) == "x " + zalgo + " y"
    assert all(len(p) <= 100 for p in parts)


def test_entities_and_clusters_together() -> None:
    text = ("&lt;🇯🇵&amp;e\u0301") * 200
    parts = split_text(text, 57)
    assert "".join(parts) == text
    for part in parts:
        assert not part.startswith(("lt;", "t;", "amp;", "mp;", "p;", ";"))
    assert set(_cuts(parts)) <= _boundaries(text)


def test_safe_cut_never_splits_a_run_of_backticks() -> None:
    from ppe_slacklog.chunking import safe_cut

    text = "abc```def"
    assert [safe_cut(text, i) for i in range(len(text) + 1)] == [
        0, 1, 2, 3, 3, 3, 6, 7, 8, 9,
    ]  # fmt: skip
    assert safe_cut("ab\r\ncd", 3) == 2  # CR LF is one character too


@pytest.mark.parametrize("lead", ["", "🇯", "x🇯"], ids=["even", "odd", "ascii-odd"])
def test_long_runs_of_flags_pair_up_from_the_start_of_the_run(lead: str) -> None:
    # Cuts far from any ASCII character: which regional indicators pair up
    # depends on where the run started, hundreds of characters back.
    text = lead + "🇯🇵" * 3000
    parts = split_text(text, 2001)
    assert "".join(parts) == text
    assert set(_cuts(parts)) <= _boundaries(text)
    # A line of 200,000 flags (the library's own segmenting would look back
    # over the whole run for each flag) is split quickly and correctly too.
    parts = split_text("🇺🇸" * 200_000, 4000)
    assert len(parts) == 101
    assert all(p.startswith("🇺🇸") and len(p) % 2 == 0 for p in parts)
