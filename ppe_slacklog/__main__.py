"""``python -m ppe_slacklog``: the same as the ``ppe-slacklog`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
