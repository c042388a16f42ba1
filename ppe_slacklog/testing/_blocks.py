"""Block Kit validation of the emulator: the limits Slack enforces on ``blocks``.

Slack answers a message whose blocks break a rule with HTTP 200,
``{"ok": false, "error": "invalid_blocks", "errors": [...]}``, each error
naming the rule and a JSON pointer to the offending value, e.g.
``"must be less than 3001 characters [json-pointer:/blocks/0/text/text]"``
(the same list again under ``response_metadata.messages``, prefixed
``[ERROR]``). Blocks that are not a JSON array of objects at all are
``invalid_blocks_format``; blocks whose JSON is over about 13,000 characters
are ``msg_blocks_too_long`` (undocumented, bolt-js #2509).

Only the block types a status card uses are checked closely (header,
section, context, divider, image, markdown); other types Slack knows are
accepted as they are; unknown types are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._metadata import json_param
from ._state import ApiResult, error_result

__all__ = [
    "MAX_BLOCKS",
    "MAX_BLOCKS_JSON_CHARS",
    "BlockChecker",
    "parse_blocks",
]

MAX_BLOCKS: Final = 50
#: Where Slack starts answering ``msg_blocks_too_long`` (compact JSON, chars).
MAX_BLOCKS_JSON_CHARS: Final = 13_000
MAX_HEADER_CHARS: Final = 150
MAX_SECTION_CHARS: Final = 3_000
MAX_FIELDS: Final = 10
MAX_FIELD_CHARS: Final = 2_000
MAX_CONTEXT_ELEMENTS: Final = 10
MAX_MARKDOWN_CHARS: Final = 12_000  # all markdown blocks of a message together
MAX_ALT_TEXT_CHARS: Final = 2_000
MAX_IMAGE_URL_CHARS: Final = 3_000
MAX_BLOCK_ID_CHARS: Final = 255

# Block types Slack knows but the emulator does not inspect.
_LOOSE_TYPES: Final = frozenset(
    {
        "actions",
        "call",
        "context_actions",
        "file",
        "input",
        "rich_text",
        "table",
        "video",
    }
)
_TEXT_TYPES: Final = frozenset({"plain_text", "mrkdwn"})
_FILE_ID: Final = re.compile(r"^F[A-Z0-9]+$")

#: ``file_usable(slack_file)``: whether a ``slack_file`` object names a file
#: of the workspace that messages may show (exists, not deleted, shared).
FileCheck = Callable[[Mapping[str, Any]], bool]


def parse_blocks(raw: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Read the ``blocks`` argument as a client sent it.

    ``slack_sdk`` sends a list inside its JSON body; a form-encoded call sends
    a JSON string.

    Returns:
        ``(blocks, None)``: ``None`` when absent, else the list (possibly
        empty); or ``(None, "invalid_blocks_format")``.

    Example:
        >>> parse_blocks('[{"type": "divider"}]')
        ([{'type': 'divider'}], None)
        >>> parse_blocks(None), parse_blocks("[]")
        ((None, None), ([], None))
        >>> parse_blocks('{"type": "divider"}')
        (None, 'invalid_blocks_format')
    """
    value, error = json_param(raw, list, "invalid_blocks_format")
    if value is None:
        return None, error
    if not all(isinstance(b, dict) for b in value):
        return None, "invalid_blocks_format"
    # A JSON round trip: an independent copy of plain JSON values.
    copied: list[dict[str, Any]] = json.loads(json.dumps(value))
    return copied, None


class BlockChecker:
    """Checks one message's blocks against Slack's Block Kit limits.

    Args:
        file_usable: Whether a ``slack_file`` object may be shown.

    Example:
        >>> checker = BlockChecker(lambda ref: False)
        >>> checker.check([{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}])
        ['must be plain_text [json-pointer:/blocks/0/text/type]']
        >>> checker.check([{"type": "divider"}])
        []
    """

    def __init__(self, file_usable: FileCheck) -> None:
        """Remember how to look up files named by ``slack_file``."""
        self._file_usable = file_usable
        self._errors: list[str] = []
        self._markdown_chars = 0
        self._block_ids: set[str] = set()

    def result(self, blocks: list[dict[str, Any]]) -> ApiResult | None:
        """The error answer Slack gives for ``blocks``, ``None`` when valid.

        Example:
            >>> BlockChecker(lambda ref: True).result([{"type": "nope"}]).error
            'invalid_blocks'
        """
        errors = self.check(blocks)
        if errors:
            return error_result(
                "invalid_blocks",
                errors=errors,
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )
        size = len(json.dumps(blocks, ensure_ascii=False, separators=(",", ":")))
        if size > MAX_BLOCKS_JSON_CHARS:
            return error_result("msg_blocks_too_long")
        return None

    def check(self, blocks: list[dict[str, Any]]) -> list[str]:
        """Every rule ``blocks`` break, as Slack words them."""
        self._errors = []
        self._markdown_chars = 0
        self._block_ids = set()
        if len(blocks) > MAX_BLOCKS:
            self._fail(f"no more than {MAX_BLOCKS} items allowed", "/blocks")
        for number, block in enumerate(blocks):
            self._block(block, f"/blocks/{number}")
        return list(self._errors)

    # ----------------------------------------------------------------- rules

    def _fail(self, why: str, pointer: str) -> None:
        self._errors.append(f"{why} [json-pointer:{pointer}]")

    def _block(self, block: Mapping[str, Any], at: str) -> None:
        kind = block.get("type")
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not block_id:
                self._fail("must be a non-empty string", f"{at}/block_id")
            elif len(block_id) > MAX_BLOCK_ID_CHARS:
                self._fail(
                    f"must be less than {MAX_BLOCK_ID_CHARS + 1} characters",
                    f"{at}/block_id",
                )
            elif block_id in self._block_ids:
                self._fail(f"duplicate block_id: {block_id}", f"{at}/block_id")
            else:
                self._block_ids.add(block_id)
        checks: dict[str, Callable[[Mapping[str, Any], str], None]] = {
            "header": self._header,
            "section": self._section,
            "context": self._context,
            "divider": lambda b, a: None,
            "image": self._image,
            "markdown": self._markdown,
        }
        if isinstance(kind, str) and kind in checks:
            checks[kind](block, at)
        elif not (isinstance(kind, str) and kind in _LOOSE_TYPES):
            self._fail("must be a valid enum value", f"{at}/type")

    def _text(
        self,
        value: Any,
        at: str,
        limit: int,
        types: frozenset[str] = _TEXT_TYPES,
    ) -> None:
        if not isinstance(value, Mapping):
            self._fail("must provide an object", at)
            return
        if value.get("type") not in types:
            wanted = " or ".join(sorted(types))
            self._fail(f"must be {wanted}", f"{at}/type")
        self._length(value.get("text"), f"{at}/text", limit)

    def _length(self, text: Any, at: str, limit: int) -> None:
        if not isinstance(text, str):
            self._fail("must provide a string", at)
        elif not text:
            self._fail("must be more than 0 characters", at)
        elif len(text) > limit:
            self._fail(f"must be less than {limit + 1} characters", at)

    def _header(self, block: Mapping[str, Any], at: str) -> None:
        self._text(
            block.get("text"),
            f"{at}/text",
            MAX_HEADER_CHARS,
            frozenset({"plain_text"}),
        )

    def _section(self, block: Mapping[str, Any], at: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            self._fail("must provide either text or fields", at)
        if text is not None:
            self._text(text, f"{at}/text", MAX_SECTION_CHARS)
        if fields is not None:
            if not isinstance(fields, list) or not fields:
                self._fail("must provide a non-empty array", f"{at}/fields")
                return
            if len(fields) > MAX_FIELDS:
                self._fail(f"no more than {MAX_FIELDS} items allowed", f"{at}/fields")
            for number, field in enumerate(fields):
                self._text(field, f"{at}/fields/{number}", MAX_FIELD_CHARS)

    def _context(self, block: Mapping[str, Any], at: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self._fail("must provide a non-empty array", f"{at}/elements")
            return
        if len(elements) > MAX_CONTEXT_ELEMENTS:
            self._fail(
                f"no more than {MAX_CONTEXT_ELEMENTS} items allowed", f"{at}/elements"
            )
        for number, element in enumerate(elements):
            where = f"{at}/elements/{number}"
            if isinstance(element, Mapping) and element.get("type") == "image":
                self._picture(element, where)
            else:
                self._text(element, where, MAX_SECTION_CHARS)

    def _image(self, block: Mapping[str, Any], at: str) -> None:
        self._picture(block, at)
        title = block.get("title")
        if title is not None:
            self._text(
                title, f"{at}/title", MAX_ALT_TEXT_CHARS, frozenset({"plain_text"})
            )

    def _picture(self, image: Mapping[str, Any], at: str) -> None:
        # An image block or an image element: alt text and one source.
        alt = image.get("alt_text")
        if alt is None:
            self._fail("missing required field: alt_text", at)
        else:
            self._length(alt, f"{at}/alt_text", MAX_ALT_TEXT_CHARS)
        url, slack_file = image.get("image_url"), image.get("slack_file")
        if url is None and slack_file is None:
            self._fail("must provide either image_url or slack_file", at)
        elif url is not None and slack_file is not None:
            self._fail("must provide only one of image_url or slack_file", at)
        elif url is not None:
            self._length(url, f"{at}/image_url", MAX_IMAGE_URL_CHARS)
            if isinstance(url, str) and not re.match(r"^https?://", url):
                self._fail("invalid_url", f"{at}/image_url")
        else:
            self._slack_file(slack_file, f"{at}/slack_file")

    def _slack_file(self, ref: Any, at: str) -> None:
        if not isinstance(ref, Mapping) or ("id" in ref) == ("url" in ref):
            self._fail("must provide exactly one of id or url", at)
            return
        file_id = ref.get("id")
        if file_id is not None and (
            not isinstance(file_id, str) or not _FILE_ID.match(file_id)
        ):
            self._fail(
                f"input must match regex pattern: {_FILE_ID.pattern}", f"{at}/id"
            )
            return
        if not self._file_usable(ref):
            # Also a file not shared yet: Slack shares asynchronously, so a
            # message naming a file right after its upload fails
            # (python-slack-sdk #1521, #1658, #1797).
            self._fail("invalid slack file", at)

    def _markdown(self, block: Mapping[str, Any], at: str) -> None:
        text = block.get("text")
        self._length(text, f"{at}/text", MAX_MARKDOWN_CHARS)
        if isinstance(text, str):
            self._markdown_chars += len(text)
            if len(text) <= MAX_MARKDOWN_CHARS < self._markdown_chars:
                self._fail(
                    f"markdown blocks of a message must total less than "
                    f"{MAX_MARKDOWN_CHARS + 1} characters",
                    f"{at}/text",
                )
