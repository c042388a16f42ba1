"""The documentation site cannot go stale silently.

The configuration reference (docs/configuration.md) must list every argument
of the public constructors and every environment variable the library reads;
the troubleshooting page every Slack error code the library explains; the
Slack app manifest exactly the scopes its page explains and
``ppe-slacklog check`` checks; the API reference every public name; the
performance page the README's benchmark table. The pytest module shown on
the testing page runs, with pytest, as written. (The
site itself is built by ``sphinx-build -W`` in ``.ci/run``; the other python
blocks of the pages run in tests/test_docs_snippets.py.)
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import ppe_slacklog
from ppe_slacklog import slackapi, webhookapi
from ppe_slacklog._cli_check import SCOPES
from ppe_slacklog.testing import SlackEmulator

DOCS = Path(__file__).resolve().parent.parent / "docs"
PACKAGE = Path(ppe_slacklog.__file__).resolve().parent

# The constructors the configuration reference documents, one section each.
DOCUMENTED = [
    "Slack",
    "SlackWebhook",
    "SlackHandler",
    "SlackWebhookHandler",
    "SlackFormatter",
    "JsonFormatter",
    "ConsoleFormatter",
]


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n")
    after = re.compile(rf"^{level} ", re.MULTILINE).search(
        text, start + len(heading) + 2
    )
    return text[start : after.start() if after else len(text)]


def _code_names(text: str) -> set[str]:
    """Every name written as inline code: `name`, also inside `a, b` lists."""
    names: set[str] = set()
    for span in re.findall(r"`([^`]+)`", text):
        names.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span))
    return names


@pytest.mark.parametrize("name", DOCUMENTED)
def test_configuration_reference_lists_every_argument(name: str) -> None:
    section = _section(_page("configuration.md"), f"## `{name}`")
    # The argument tables: the first column of each row.
    listed = set()
    for row in re.findall(r"^\| (.+?) \|", section, re.MULTILINE):
        listed |= _code_names(row)
    parameters = inspect.signature(getattr(ppe_slacklog, name)).parameters
    missing = [p for p in parameters if p not in listed]
    assert missing == [], f"docs/configuration.md, ## `{name}`: add rows for {missing}"


def test_webhook_handler_reference_names_what_it_refuses() -> None:
    section = _section(_page("configuration.md"), "## `SlackWebhookHandler`")
    source = inspect.getsource(ppe_slacklog.SlackWebhookHandler.__init__)
    refused = re.search(r"for name in \(([^)]*)\)", source)
    assert refused, "SlackWebhookHandler refuses some SlackHandler options"
    names = re.findall(r'"(\w+)"', refused.group(1))
    assert names and set(names) <= _code_names(section), names


def _environment_variables() -> set[str]:
    """Names the package reads from os.environ (directly or via constants)."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        found.update(re.findall(r'environ\.get\(\s*"([A-Z][A-Z0-9_]+)"', source))
        found.update(re.findall(r'_env_int\(\s*"([A-Z][A-Z0-9_]+)"', source))
        found.update(re.findall(r'_\w*ENV: Final = "([A-Z][A-Z0-9_]+)"', source))
    return found


def test_configuration_reference_lists_every_environment_variable() -> None:
    section = _section(_page("configuration.md"), "## Environment variables")
    variables = _environment_variables()
    assert {"SLACK_BOT_TOKEN", "SLACK_API_URL", "SLACK_WEBHOOK_URL"} <= variables
    table = set()
    for row in re.findall(r"^\| (.+?) \|", section, re.MULTILINE):
        table |= _code_names(row)
    assert sorted(variables - table) == []


def test_troubleshooting_explains_every_slack_error_code() -> None:
    text = _page("troubleshooting.md")
    web = _section(text, "### Web API (bot token)")
    hooks = _section(text, "### Incoming Webhooks")
    codes = {f"`{c}`" for c in slackapi._FIXES}
    assert sorted(c for c in codes if c not in web) == []
    codes = {f"`{c}`" for c in webhookapi._FIXES}
    assert sorted(c for c in codes if c not in hooks) == []


def test_the_manifest_has_exactly_the_scopes_the_page_explains() -> None:
    text = _page("slack-app.md")
    manifest = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.DOTALL)[1])
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    table = _section(text, "## What each scope is for")
    explained = re.findall(r"^\| `([a-z:.]+)` \|", table, re.MULTILINE)
    assert scopes == explained
    assert manifest["settings"]["token_rotation_enabled"] is False
    # One source of truth: `ppe-slacklog check` checks the manifest's scopes.
    assert sorted(scopes) == sorted(s.name for s in SCOPES)
    required = " and ".join(f"`{s.name}`" for s in SCOPES if s.required)
    assert f"{required} are required" in " ".join(text.split())
    # The emulator's default token is the library's working set.
    default_scopes = inspect.signature(SlackEmulator).parameters["scopes"].default
    assert set(default_scopes) <= set(scopes)


def test_the_pytest_module_of_the_testing_page_passes(tmp_path: Path) -> None:
    text = _page("testing.md")
    block = re.search(
        r"<!-- not-run: a pytest test module;[^\n]*-->\n```python\n(.*?)```",
        text,
        re.DOTALL,
    )
    assert block, "docs/testing.md shows a pytest module"
    (tmp_path / "test_notifications.py").write_text(block[1], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-p", "no:xdist", "-W", "error::ppe_slacklog.SlackDeliveryWarning"),
            "test_notifications.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout, done.stdout


def test_the_api_reference_documents_every_public_name() -> None:
    from ppe_slacklog import testing

    text = _page("api.md")
    documented = set(re.findall(r"^\.\. \w+:: ([\w.]+)", text, re.MULTILINE))
    documented |= set(re.findall(r"^\.\. py:\w+:: ([\w.]+)", text, re.MULTILINE))
    public = {f"ppe_slacklog.{n}" for n in ppe_slacklog.__all__}
    public |= {f"ppe_slacklog.testing.{n}" for n in testing.__all__}
    assert sorted(public - documented) == []


def test_the_performance_page_shows_the_readme_benchmark_table() -> None:
    def table(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("| ")]

    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    section = _section(readme, "## Performance")
    assert table(section) and table(section) == table(_page("performance.md"))
