"""Sphinx configuration of the ppe_slacklog documentation site.

Build it (the ``docs`` extra pins the tools)::

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

Pages are MyST Markdown (they read as plain Markdown on GitHub too); the API
reference comes from the Google-style docstrings (autodoc + napoleon).

Intersphinx (links into the Python, pytorch-pfn-extras and slack_sdk
documentation) is off unless ``PPE_SLACKLOG_DOCS_INTERSPHINX=1`` is set.
Why: intersphinx downloads each project's ``objects.inv`` at build time, and
CI (and many clusters) reach package registries only; a failed download is
a warning, and ``-W`` makes every warning an error, so a default-on mapping
would fail every offline build. We do not check the inventories in: they
are other projects' build products, we cannot produce them offline, and a
copy would go stale silently. Without the mapping, references to outside
objects (``logging.Handler``) render as code instead of links; the build is
otherwise the same. With the variable set (a machine with internet, e.g. a
docs host), the links are made. slack_sdk publishes its API reference with
pdoc, which writes no inventory, so the pages link Slack's and slack_sdk's
documentation by plain URL instead (which also works on GitHub).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The package is normally installed (pip install -e); this makes a plain
# checkout work too.
sys.path.insert(0, str(ROOT))

import ppe_slacklog  # noqa: E402

project = "ppe_slacklog"
author = "ppe_slacklog contributors"
copyright = "ppe_slacklog contributors"
release = ppe_slacklog.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
]

# Markdown only; the README is outside docs/ and stays the front door.
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
# Fences without a language (the ASCII diagrams) are text, not Python.
highlight_language = "text"

# GitHub-style anchors for headings (links such as
# index.md#the-handler-ppe_slacklogslackhandler keep working on the site).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# -- API reference -----------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Only the documented parameters get their types (the Args sections name
# them all); "all" would add a second, bare Parameters list to classes.
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- Links to other projects -------------------------------------------------
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if os.environ.get("PPE_SLACKLOG_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "ppe": ("https://pytorch-pfn-extras.readthedocs.io/en/latest", None),
    }

# -- HTML --------------------------------------------------------------------
html_theme = "furo"
html_title = f"ppe_slacklog {release}"
html_static_path: list[str] = []


def _drop_namedtuple_boilerplate(
    app: object,
    what: str,
    name: str,
    obj: object,
    options: object,
    lines: list[str],
) -> None:
    # NamedTuple fields without a doc comment carry Python's generated
    # "Alias for field number N": noise in a reference. The field itself
    # (name and type) stays listed.
    if len(lines) == 1 and lines[0].startswith("Alias for field number"):
        lines.clear()


def _public_bases(
    app: object, name: str, obj: object, options: object, bases: list[type]
) -> None:
    # "Bases: _SafeProcessorFormatter" names a private helper a reader cannot
    # look up; show the public classes it stands for (logging.Formatter).
    public: list[type] = []
    pending = list(bases)
    while pending:
        base = pending.pop(0)
        if base.__name__.startswith("_") and base is not object:
            pending[:0] = [b for b in base.__bases__ if b is not object]
        elif base not in public:
            public.append(base)
    bases[:] = public


def setup(app: object) -> None:
    connect = app.connect  # type: ignore[attr-defined]
    connect("autodoc-process-docstring", _drop_namedtuple_boilerplate)
    connect("autodoc-process-bases", _public_bases)
