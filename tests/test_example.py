"""End-to-end tests of ``examples/train.py``, run as a real subprocess.

Without ``SLACK_BOT_TOKEN`` the example trains against its bundled Slack
emulator and prints the channel as a user would see it; these tests read that
printout. With a token (here: pointed at an emulator of the test through
``SLACK_API_URL``) it posts like it would to real Slack.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import is_chart, thread_texts

from ppe_slacklog.testing import SlackEmulator

__all__: list[str] = []

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "train.py"
RENDER_HEADER = "The Slack thread, as a user would see it:"
REPLY = "  > "
REPLY_CONTINUATION = "    "
TOP_CONTINUATION = "  "
EPOCH_REPLY = r"Epoch #{}: loss = \d+\.\d{{4}}, accuracy = \d\.\d{{3}}"
# The live card's chart, uploaded into the thread at the end of the run.
CHART_NAME = r"metrics-[0-9a-f]+\.png"


@dataclass(frozen=True)
class Run:
    """A finished run of the example."""

    returncode: int
    stdout: str
    stderr: str
    out_dir: Path


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SLACK_BOT_TOKEN", "SLACK_API_URL"}
    }
    env.update(PYTHONIOENCODING="utf-8", MPLBACKEND="Agg", **extra)
    return env


def _run(out_dir: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(out_dir), *args],
        cwd=REPO_ROOT,
        env=_env() if env is None else env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr, out_dir)


@pytest.fixture(scope="module")
def emulated_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Five epochs (the default) against the example's own emulator.

    No SLACK_BOT_TOKEN; five epochs give the card a chart (a metric with 5
    values).
    """
    out_dir = tmp_path_factory.mktemp("example") / "result"
    return _run(out_dir, "--epochs", "5")


def _parse_render(stdout: str) -> tuple[list[str], list[str]]:
    """Splits the printed channel into top-level messages and thread replies.

    Returns:
        The top-level messages and the replies, each with its continuation
        lines joined by newlines.
    """
    assert RENDER_HEADER in stdout, stdout
    lines = stdout.split(RENDER_HEADER, 1)[1].strip("\n").splitlines()
    assert lines[0] == "#experiment-progress", lines
    top_level: list[str] = []
    replies: list[str] = []
    for line in lines[1:]:
        if line.startswith(REPLY):
            replies.append(line[len(REPLY) :])
        elif line.startswith(REPLY_CONTINUATION) and replies:
            replies[-1] += "\n" + line[len(REPLY_CONTINUATION) :]
        elif line.startswith(TOP_CONTINUATION) and top_level and not replies:
            top_level[-1] += "\n" + line[len(TOP_CONTINUATION) :]
        else:
            assert not replies, f"a top-level line after the thread: {line!r}"
            top_level.append(line)
    return top_level, replies


def test_example_runs_cleanly(emulated_run: Run) -> None:
    assert emulated_run.returncode == 0, emulated_run.stderr
    assert "SLACK_BOT_TOKEN is not set" in emulated_run.stdout
    # No delivery problem, no template problem.
    assert "SlackDeliveryWarning" not in emulated_run.stderr, emulated_run.stderr
    assert "TemplateWarning" not in emulated_run.stderr, emulated_run.stderr
    assert "Traceback" not in emulated_run.stderr, emulated_run.stderr


def test_one_thread_rooted_at_the_start_message(emulated_run: Run) -> None:
    top_level, replies = _parse_render(emulated_run.stdout)
    # The start message is the only top-level message: the run's live card,
    # read as a person sees it once the run is over.
    (card,) = top_level
    lines = card.splitlines()
    assert lines[0] == "✅ Finished · epoch 5/5", lines
    # ppe's start text (its two lines) is the card's identity.
    assert lines[1].startswith("🏃 *Training started! "), lines
    assert lines[2].startswith("Command: `"), lines
    assert "train.py" in lines[2]
    assert "--epochs 5" in lines[2]
    # Its progress reached the end, and its table has the run's metrics.
    assert "epoch 5/5 · iteration 80/80" in lines, lines
    for metric in ("train/loss", "val/loss", "val/accuracy"):
        assert any(line.startswith(metric + " ") for line in lines), lines
    # The card shows the chart uploaded into its thread.
    (chart,) = [r for r in replies if re.fullmatch(rf"\[file: {CHART_NAME}\]", r)]
    assert lines[-1] == chart.replace("[file: ", "[image: "), lines


def test_one_reply_per_epoch_then_the_end_message(emulated_run: Run) -> None:
    _, all_replies = _parse_render(emulated_run.stdout)
    # The card's chart comes once, on top of ppe's replies.
    charts = [r for r in all_replies if re.fullmatch(rf"\[file: {CHART_NAME}\]", r)]
    assert len(charts) == 1, all_replies
    replies = [r for r in all_replies if r not in charts]
    # Replies that waited for Slack's pace share a message, a line each.
    lines = "\n".join(r for r in replies if "[file: " not in r).splitlines()
    # Slack shares a file asynchronously: the message with the plot (epoch
    # 5's) may come after the end message.
    (epoch5,) = [r for r in replies if "[file: " in r]
    epochs = [line for line in lines if line.startswith("Epoch #")]
    for number, line in enumerate(epochs, start=1):
        assert re.fullmatch(EPOCH_REPLY.format(number), line), line
    assert len(epochs) == 4, replies
    (end,) = [r for r in replies if "✅ *Training finished! " in r]
    # The plot is uploaded once, with the last epoch (upload_trigger).
    assert re.fullmatch(
        EPOCH_REPLY.format(5) + re.escape(" [file: statistics.png]"), epoch5
    ), epoch5
    assert "✅ *Training finished! " in end.splitlines()[-2], end
    assert end.endswith("<@username> Check out the result!"), end
    assert "[missing:" not in emulated_run.stdout
    assert emulated_run.stdout.count("[file: statistics.png]") == 1


def test_outputs_are_written_to_out_dir(emulated_run: Run) -> None:
    plot = emulated_run.out_dir / "statistics.png"
    assert plot.is_file()
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    log = json.loads((emulated_run.out_dir / "log").read_text())
    assert [entry["epoch"] for entry in log] == [1, 2, 3, 4, 5]
    assert {"train/loss", "val/loss", "val/accuracy"} <= set(log[-1])


def test_with_a_token_it_posts_to_the_configured_slack(tmp_path: Path) -> None:
    with SlackEmulator() as emu:
        env = _env(SLACK_BOT_TOKEN=emu.token, SLACK_API_URL=emu.base_url)
        run = _run(tmp_path / "result", "--epochs", "1", "--channel", "alerts", env=env)
        assert run.returncode == 0, run.stderr
        assert "SlackDeliveryWarning" not in run.stderr, run.stderr
        assert "sent to Slack channel #alerts" in run.stdout
        assert RENDER_HEADER not in run.stdout
        (parent,) = emu.top_level("alerts")
        emu.share_pending_files()  # Slack shares uploads asynchronously
        thread = emu.thread("alerts", parent.ts)
        texts = thread_texts(emu, "alerts", parent.ts)
        assert len(texts) == 3, texts
        assert texts[0].startswith("🏃 *Training started! ")
        # The live card ends in the run's final state.
        card = emu.message("alerts", parent.ts)
        assert card.blocks is not None
        assert card.blocks[0]["text"]["text"] == "✅ Finished · epoch 1/1"
        # Epoch 1's text travels with its plot, whose message Slack may show
        # after the end message.
        (with_plot,) = [m.text for m in thread if m.files and not is_chart(m)]
        assert re.fullmatch(EPOCH_REPLY.format(1), with_plot), texts
        assert any(t.startswith("✅ *Training finished! ") for t in texts[1:])
        # One epoch: too few values for a chart; the plot is the only file.
        assert not [m for m in thread if is_chart(m)]
        (uploaded,) = emu.files
        assert uploaded.name == "statistics.png"
        assert uploaded.thread_ts == parent.ts
        assert uploaded.content == (tmp_path / "result" / "statistics.png").read_bytes()
        assert emu.messages("experiment-progress") == []


def test_help_describes_the_options() -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    for option in ("--epochs", "--channel", "--out", "SLACK_BOT_TOKEN"):
        assert option in completed.stdout


@pytest.mark.parametrize("recipe", ["a", "d"])
def test_routing_example_runs(recipe: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "examples" / "routing.py"),
            recipe,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    if recipe == "a":
        assert "> Epoch #3: loss = " in result.stdout
        assert '"ppe_event": "end"' in result.stdout
    else:
        assert "ppe_event=end" in result.stdout
        assert "#experiment-progress" not in result.stdout
