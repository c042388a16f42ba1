"""The README's picture of a card is what the emulator renders, not a drawing."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_shows_the_card_as_the_emulator_renders_it() -> None:
    spec = importlib.util.spec_from_file_location(
        "card_preview", ROOT / "examples" / "card_preview.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"<!-- card-preview:.*?-->\n````text\n(.*?)````", readme, re.S)
    assert shown is not None, "README lost its card preview"
    assert shown.group(1) == module.render_preview() + "\n"
    # On the first screen: before the README's first section.
    assert readme.index("<!-- card-preview") < readme.index("\n## ")
