"""The docs and examples, run as written against the emulator.

Every fenced ``python`` block of README.md and docs/*.md runs, in order, in
one child Python per file (a reader's session: each block gets a namespace
of its own, logging configured by one block stays configured for the next),
from a directory that holds ``examples/`` as a checkout does, with
``SLACK_BOT_TOKEN``, ``SLACK_API_URL`` and ``SLACK_WEBHOOK_URL`` pointing at
the emulator. Every example script and recipe runs as a child too. Any
exception, any warning, and any ``[missing: ...]`` (or other template
marker) in what reached Slack fails the test.

A block that needs more than itself says so in an HTML comment on the line
right before it, visible in the Markdown:

* ``<!-- run: with-manager -->``: a program of its own (logging as a new
  program finds it) where ``manager`` (a tiny real ``ExtensionsManager`` of
  ``max_epoch`` = 2 epochs with ppe's ``PlotReport`` writing
  ``result/statistics.png``) exists before the block, and trains to its end
  after it, reporting ``loss`` and ``val/loss``.
* ``<!-- run: after-training -->``: such a training, with the drop-in
  ``Slack`` and the logging configuration of the blocks before, runs
  before the block.
* ``<!-- not-run: reason -->``: the block is not run, for the reason given.

Signatures and lists the docs spell out are compared with the code.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

import ppe_slacklog
from ppe_slacklog.events import EVENT_KINDS
from ppe_slacklog.formatter import UNSET
from ppe_slacklog.testing import SlackEmulator

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"
RECIPES = EXAMPLES / "recipes"
MARKDOWN = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# What a template leaves where it could not put a value.
MARKERS = ("[missing:", "[unprintable:", "[bad format:")
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
MARK = re.compile(r"<!--\s*(run|not-run):\s*(.*?)\s*-->\s*\Z")
CONTEXTS = ("plain", "with-manager", "after-training")

pytestmark = pytest.mark.slack_emulator(rate_limits=False, share_delay=0)


@dataclass(frozen=True)
class Snippet:
    """One ```python block of a Markdown file."""

    where: str  # file:line of the block's first line of code
    code: str
    context: str  # one of CONTEXTS, or "not-run"
    reason: str = ""


def snippets(path: Path) -> list[Snippet]:
    """The python blocks of ``path`` with the marker before each, if any."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n")
        line = text.count("\n", 0, match.start(1)) + 1
        where = f"{path.relative_to(REPO_ROOT)}:{line}"
        last = before.rsplit("\n", 1)[-1]
        context, reason = "plain", ""
        if last.lstrip().startswith("<!--"):
            mark = MARK.search(last)
            assert mark, f"{where}: unreadable marker {last!r}"
            kind, value = mark.groups()
            if kind == "not-run":
                assert value, f"{where}: a not-run block must say why"
                context, reason = "not-run", value
            else:
                assert value in CONTEXTS, f"{where}: unknown run context {value!r}"
                context = value
        found.append(Snippet(where, match.group(1), context, reason))
    return found


# Runs the blocks handed over as JSON (argv[1]) and writes what happened to
# argv[2]: per block, the error (a traceback) and the warnings it raised.
RUNNER = r"""
import json, logging, os, sys, time, traceback, warnings

given, taken = sys.argv[1:3]  # blocks may set sys.argv
with open(given, encoding="utf-8") as file:
    blocks = json.load(file)


def new_manager():
    import pytorch_pfn_extras as ppe
    import torch

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    manager = ppe.training.ExtensionsManager(
        model, optimizer, 2, iters_per_epoch=2
    )
    manager.extend(
        ppe.training.extensions.PlotReport(
            ["loss", "val/loss"], "epoch", filename="statistics.png"
        )
    )
    return manager


def train(manager):
    import pytorch_pfn_extras as ppe
    import torch

    model = manager.models["main"]
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    while not manager.stop_trigger:
        with manager.run_iteration(step_optimizers=["main"]):
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            with torch.no_grad():
                val_loss = torch.nn.functional.mse_loss(model(x), y)
            ppe.reporting.report({"loss": loss.detach(), "val/loss": val_loss})


def unconfigure_logging():
    # As in a new program: no handlers, default levels (the old ones deliver).
    for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            for handler in logger.handlers[:]:
                logger.removeHandler(handler)
                handler.close()
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
    logging.root.setLevel(logging.WARNING)


def run(block):
    namespace = {"__name__": "__main__"}
    manager = None
    if "env" in block:  # a new session (a Markdown file): its own Slack
        unconfigure_logging()
        os.environ.update(block["env"])
    if block["context"] in ("with-manager", "program"):
        unconfigure_logging()
    if block["context"] == "after-training":
        import ppe_slacklog

        before = new_manager()
        before.extend(
            ppe_slacklog.Slack(
                "experiment-progress", msg="Epoch #{manager.epoch}: {val/loss:.3f}"
            )
        )
        train(before)
    elif block["context"] == "with-manager":
        manager = namespace["manager"] = new_manager()
        namespace["max_epoch"] = 2
    exec(compile(block["code"], block["where"], "exec"), namespace)
    if manager is not None:
        train(manager)


results = []
for block in blocks:
    began = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = None
        try:
            run(block)
        except BaseException:
            error = traceback.format_exc()
    results.append(
        {
            "where": block["where"],
            "seconds": round(time.monotonic() - began, 1),
            "error": error,
            "warnings": [
                f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}"
                for w in caught
            ],
        }
    )
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    logging.shutdown()  # delivers what is queued, within flush_timeout
results.append(
    {
        "where": "logging.shutdown()",
        "error": None,
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
    }
)
with open(taken, "w", encoding="utf-8") as file:
    json.dump(results, file)
"""


def _env(emu: SlackEmulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update(
        SLACK_BOT_TOKEN=emu.token,
        SLACK_API_URL=emu.base_url,
        SLACK_WEBHOOK_URL=emu.webhook_url("alerts"),
        MPLBACKEND="Agg",
        PYTHONIOENCODING="utf-8",
    )
    return env


def _lines(emu: SlackEmulator, channel: str | None = None) -> list[str]:
    """Every line that reached Slack: records that waited share a message."""
    return [line for m in emu.messages(channel) for line in m.text.splitlines()]


def _marked(emu: SlackEmulator) -> list[str]:
    return [m.text for m in emu.messages() if any(x in m.text for x in MARKERS)]


@dataclass
class Child:
    """A child Python running blocks against an emulator of its own."""

    emu: SlackEmulator
    process: subprocess.Popen[str]
    taken: Path
    stdout: str = ""
    stderr: str = ""
    done: bool = False

    def finish(self, timeout: float = 180) -> list[dict[str, Any]]:
        """Waits for the child; the blocks' results (none: it did not run them)."""
        if not self.done:
            self.stdout, self.stderr = self.process.communicate(timeout=timeout)
            self.done = True
        if not self.taken.exists():
            return []
        return list(json.loads(self.taken.read_text(encoding="utf-8")))

    def problems(self, where: str = "") -> list[str]:
        """Errors and warnings of the blocks (whose place starts with
        ``where``), and whatever the child printed of them."""
        found = [
            f"{r['where']}: {r['error'] or ''}{' '.join(r['warnings'])}"
            for r in self.finish()
            if (r["error"] or r["warnings"]) and r["where"].startswith(where)
        ]
        if self.process.returncode != 0:
            found.append(f"exit status {self.process.returncode}: {self.stderr}")
        if "Warning" in self.stderr or "Traceback" in self.stderr:
            found.append(f"stderr: {self.stderr}")
        if any(x in self.stdout for x in MARKERS):
            found.append(f"stdout: {self.stdout}")
        return found


def _program(script: Path, *args: str) -> dict[str, str]:
    """A block that runs ``script`` as ``python script args...`` would."""
    argv = [str(script), *args]
    code = f"""
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    if exit.code not in (0, None):
        raise
"""
    return {"where": " ".join(["python", script.name, *args]), "code": code}


PREEMPTED = r"""
import logging.config, os, signal, sys
import yaml, torch, pytorch_pfn_extras as ppe, ppe_slacklog

with open(sys.argv[1], encoding="utf-8") as recipe:
    logging.config.dictConfig(yaml.safe_load(recipe))
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
manager = ppe.training.ExtensionsManager(model, optimizer, 3, iters_per_epoch=2)
manager.extend(ppe_slacklog.Slack("experiment-progress", msg="ep {manager.epoch}"))
while not manager.stop_trigger:
    with manager.run_iteration():
        ppe.reporting.report({"loss": 0.5, "val/loss": 0.25})
        if manager.iteration == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's pre-emption
"""


@pytest.fixture(scope="module")
def children(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Child]]:
    """Every child of this module, started at once: they mostly wait (on
    Slack's pace, on exit flushes), so together they take the longest one's
    time rather than the sum."""
    root = tmp_path_factory.mktemp("snippets")
    runner = root / "runner.py"
    runner.write_text(RUNNER, encoding="utf-8")
    started: dict[str, Child] = {}
    stack = contextlib.ExitStack()
    emus = {
        name: stack.enter_context(SlackEmulator(rate_limits=False, share_delay=0))
        for name in [*(p.name for p in MARKDOWN), "examples", "preempted"]
    }
    # The Markdown files, each a session of its own with its own Slack, in
    # one child; the examples in another; the pre-empted run in a third.
    docs: list[dict[str, Any]] = []
    for path in MARKDOWN:
        blocks = [
            {"where": b.where, "code": b.code, "context": b.context}
            for b in snippets(path)
            if b.context != "not-run"
        ]
        if blocks:
            slack = {k: v for k, v in _env(emus[path.name]).items() if "SLACK" in k}
            docs += [{**blocks[0], "env": slack}, *blocks[1:]]
    out = root / "out"
    routing, train = EXAMPLES / "routing.py", EXAMPLES / "train.py"
    preview = EXAMPLES / "card_preview.py"
    letters = sorted(p.name[0] for p in RECIPES.glob("*.yaml"))
    programs = [
        *(_program(routing, x, "--out", str(out / x)) for x in letters),
        _program(routing, "b", "--fail", "--out", str(out / "b-fail")),
        _program(preview),
        _program(train, "--epochs", "1", "--out", str(out / "result")),
    ]
    jobs: dict[str, list[dict[str, Any]] | str] = {
        "docs": docs,
        "examples": [{**p, "context": "program"} for p in programs],
        "preempted": PREEMPTED,
    }
    with stack:
        for name, job in jobs.items():
            emu = emus.get(name, emus["README.md"])
            cwd = root / name / "cwd"
            cwd.mkdir(parents=True)
            # Blocks run from a directory with examples/ where a checkout has it.
            (cwd / "examples").symlink_to(EXAMPLES, target_is_directory=True)
            given, taken = root / name / "blocks.json", root / name / "results.json"
            if isinstance(job, str):
                script = root / name / "main.py"
                script.write_text(job, encoding="utf-8")
                argv = [str(script), str(RECIPES / "b_alerts_and_progress.yaml")]
            else:
                given.write_text(json.dumps(job), encoding="utf-8")
                argv = [str(runner), str(given), str(taken)]
            process = subprocess.Popen(
                [sys.executable, *argv],
                cwd=cwd,
                env=_env(emu),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            stack.callback(process.kill)
            started[name] = Child(emu, process, taken)
        for path in MARKDOWN:  # the docs' child, read through each file's Slack
            started[path.name] = dataclasses.replace(
                started["docs"], emu=emus[path.name]
            )
        yield started


@pytest.mark.parametrize("path", MARKDOWN, ids=[p.name for p in MARKDOWN])
def test_every_python_block_runs_as_written(
    path: Path, children: dict[str, Child]
) -> None:
    child = children[path.name]
    name = f"{path.relative_to(REPO_ROOT)}:"
    assert child.problems(name) == [], "\n".join(child.problems(name))
    emu = child.emu
    assert _marked(emu) == []
    lines = _lines(emu)
    ran = [r["where"] for r in child.finish() if r["where"].startswith(name)]
    assert ran == [b.where for b in snippets(path) if b.context != "not-run"]
    if path.name == "README.md":
        # The drop-in block: a thread, the epochs, the plot at the last one.
        assert any(x.startswith("Epoch #2: loss = ") for x in lines), lines
        assert "<@username> Check out the result!" in [x.strip() for x in lines]
        plots = [f.name for f in emu.files if not f.name.startswith("metrics-")]
        assert plots == ["statistics.png"]  # the live cards' charts apart
        # Any other log, through the handler the dictConfig block set up.
        assert "⚠️ *myproject* disk /data is 93% full" in lines
        assert "❌ *myproject* shard 3 is unreadable" in lines
        # The webhook block posted (top level) to the webhook's channel.
        hooked = _lines(emu, "alerts")
        assert hooked.index("Epoch 1") < hooked.index("Epoch 2"), hooked
        assert hooked[-1].startswith("✅ *Training finished!"), hooked
    if path.name == "routing.md":
        assert any(x.startswith("Epoch #2: ") for x in lines), lines


def test_not_run_blocks_are_few_and_say_why() -> None:
    skipped = [b for p in MARKDOWN for b in snippets(p) if b.context == "not-run"]
    assert all(b.reason for b in skipped)
    every = [b for p in MARKDOWN for b in snippets(p)]
    assert len(every) >= 8  # the parser found the blocks
    assert len(skipped) <= len(every) // 4, skipped


def test_every_example_and_recipe_runs_cleanly(children: dict[str, Child]) -> None:
    """Each script as a program of its own, in one child (one torch import)."""
    recipes = sorted(p.name for p in RECIPES.iterdir())
    # Every recipe is run through examples/routing.py (by its letter); a
    # recipe in another form needs a run of its own here.
    assert recipes == sorted(p.name for p in RECIPES.glob("*.yaml")), recipes
    assert [name[0] for name in recipes] == list("abcde")
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    # each is run by the child
    assert scripts == ["card_preview.py", "routing.py", "train.py"]
    child = children["examples"]
    assert child.problems() == [], "\n".join(child.problems())
    assert len(child.finish()) == 9  # 8 programs, then the exit
    emu = child.emu
    assert _marked(emu) == []
    alerts = [m.text for m in emu.messages("alerts")]
    assert len(alerts) == 2, alerts
    assert re.fullmatch(
        r"✅ Run finished after 3 epochs \(val/loss \d+\.\d{3}\)", alerts[0]
    ), alerts
    assert alerts[1].startswith("🚨 Run failed at epoch "), alerts
    # train.py's plot; the live cards' charts are files of their own.
    plots = [f.name for f in emu.files if not f.name.startswith("metrics-")]
    assert plots and plots[-1] == "statistics.png"


def test_recipe_b_tells_alerts_about_a_preempted_run(
    children: dict[str, Child],
) -> None:
    """A SIGTERM (a scheduler's pre-emption) reaches #alerts with its own text."""
    child = children["preempted"]
    child.finish()
    assert child.process.returncode == 143, child.stderr
    assert "Warning" not in child.stderr, child.stderr
    alerts = [m.text for m in child.emu.messages("alerts")]
    assert len(alerts) == 1, alerts
    assert alerts[0].startswith("⚠️ Run stopped at epoch 1: SIGTERM received"), alerts
    assert _marked(child.emu) == []


def _readme_signature() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"`(SlackHandler\(.*?\))`", text, re.DOTALL)
    assert match, "the README spells out SlackHandler's signature"
    return " ".join(match.group(1).split())


def test_readme_lists_every_slack_handler_keyword_with_its_default() -> None:
    call = ast.parse(_readme_signature().replace("*,", "_star_=0,"), mode="eval")
    assert isinstance(call.body, ast.Call)
    # Positional names (``channel``) are bare; the rest carry defaults.
    names = [a.id for a in call.body.args if isinstance(a, ast.Name)]
    keywords = {k.arg: k.value for k in call.body.keywords if k.arg != "_star_"}
    order = names + [k.arg for k in call.body.keywords]
    parameters = inspect.signature(ppe_slacklog.SlackHandler).parameters
    star = next(
        i for i, p in enumerate(parameters.values()) if p.kind is p.KEYWORD_ONLY
    )
    assert order == [*list(parameters)[:star], "_star_", *list(parameters)[star:]]
    for name, node in keywords.items():
        actual = parameters[name].default
        if isinstance(node, ast.Constant) and node.value is Ellipsis:
            assert actual is UNSET, name  # "...": the record's template
        else:
            shown = eval(  # the README's own expression, e.g. 16 * 2**20
                compile(ast.Expression(node), "README", "eval"), {"logging": logging}
            )
            assert shown == actual, (name, shown, actual)


def test_docs_list_every_keyword_of_the_extension() -> None:
    """docs/index.md: ppe's arguments "plus" ours; together, the signature."""
    from pytorch_pfn_extras.training.extensions import Slack as PpeSlack

    text = " ".join((REPO_ROOT / "docs" / "index.md").read_text().split())
    match = re.search(r"context=None, token=None`\) plus (.*?)\. Default trigger", text)
    assert match, "docs/index.md names the extension's extra keywords"
    extras = set(re.findall(r"`(\w+)`", match.group(1)))
    ppe_names = set(inspect.signature(PpeSlack).parameters)
    ours = set(inspect.signature(ppe_slacklog.Slack).parameters)
    assert ppe_names <= ours
    assert ours - ppe_names == extras


def test_event_filter_docstring_names_every_event_kind() -> None:
    doc = ppe_slacklog.EventFilter.__doc__ or ""
    assert [k for k in EVENT_KINDS if f"``{k}``" not in doc] == []


def test_request_timeout_with_a_client_is_refused(emu: SlackEmulator) -> None:
    client = WebClient(token=emu.token, base_url=emu.base_url, timeout=3)
    with pytest.raises(ValueError, match=r"client= keeps its own timeout \(3 s\)"):
        ppe_slacklog.SlackHandler("alerts", client=client, request_timeout=30)
    handler = ppe_slacklog.SlackHandler("alerts", client=client)
    try:
        logging.getLogger("myproject").addHandler(handler)
        logging.getLogger("myproject").warning("the client's timeout applies")
        handler.flush()
    finally:
        logging.getLogger("myproject").removeHandler(handler)
        handler.close()
    assert [m.text for m in emu.messages("alerts")] == [
        "⚠️ *myproject* the client's timeout applies"
    ]
    assert client.timeout == 3
