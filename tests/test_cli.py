"""The ``ppe-slacklog`` command, run as a subprocess against the emulator."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import make_manager, run_training, start_text, thread_texts

import ppe_slacklog
from ppe_slacklog.testing import SlackEmulator

FIX_FILES_WRITE = (
    "add `files:write` under OAuth & Permissions of your Slack app and "
    "reinstall the app"
)
ALL_BUT_FILES_WRITE = (
    "chat:write",
    "channels:read",
    "channels:join",
    "channels:history",
)


def cli(
    *args: str, emu: SlackEmulator | None = None, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m ppe_slacklog *args`` with the emulator's Slack."""
    env = dict(os.environ)
    if emu is not None:
        env["SLACK_BOT_TOKEN"] = emu.token if token is None else token
        env["SLACK_API_URL"] = emu.base_url
    return subprocess.run(
        [sys.executable, "-m", "ppe_slacklog", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ------------------------------------------------------------------- basics


def test_script_is_installed_and_every_subcommand_has_help() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["ppe-slacklog"] == "ppe_slacklog.cli:main"
    top = cli("--help")
    assert top.returncode == 0
    for command in ("check", "emulator", "replay"):
        assert command in top.stdout
        sub = cli(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert f"usage: ppe-slacklog {command}" in sub.stdout
    assert cli().returncode == 2  # a subcommand is required


def test_emulator_answers_carry_the_token_scopes(emu: SlackEmulator) -> None:
    answer = emu.client().auth_test()
    assert answer.headers["x-oauth-scopes"] == ",".join(emu.scopes)


# -------------------------------------------------------------------- check


def test_check_valid_token_and_channel(emu: SlackEmulator) -> None:
    result = cli("check", "--channel", "#experiment-progress", emu=emu)
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert "✓ token valid: workspace Emulated Workspace, bot @ppe-slacklog-bot" in out
    for scope in ("chat:write", "files:write", "channels:history", "channels:join"):
        assert re.search(rf"^✓ {re.escape(scope)} ", out, re.MULTILINE), out
    # Optional and not granted by the emulator's default token: a warning only.
    assert re.search(r"^⚠ files:read .*\(optional\): missing", out, re.MULTILINE)
    assert "✓ channel #experiment-progress (C0000002, public) found" in out
    assert "is a member of #experiment-progress" in out
    assert "✗" not in out
    assert emu.token not in out + result.stderr
    assert emu.messages() == []  # nothing posted without --post


@pytest.mark.slack_emulator(scopes=ALL_BUT_FILES_WRITE)
def test_check_token_without_files_write_fails_with_the_fix(
    emu: SlackEmulator,
) -> None:
    result = cli("check", "--channel", "general", emu=emu)
    assert result.returncode == 1
    assert re.search(r"^✗ files:write .*\(required\): missing", result.stdout, re.M)
    assert f"fix: {FIX_FILES_WRITE}" in result.stdout
    assert "1 problem" in result.stdout


def test_check_unknown_channel(emu: SlackEmulator) -> None:
    result = cli("check", "--channel", "no-such-channel", emu=emu)
    assert result.returncode == 1
    assert "✗ channel #no-such-channel not found" in result.stdout


def test_check_private_channel_the_bot_is_not_in(emu: SlackEmulator) -> None:
    emu.add_channel("secret-runs", private=True, member=False)
    result = cli("check", "--channel", "secret-runs", emu=emu)
    assert result.returncode == 1
    assert "type `/invite @ppe-slacklog-bot` in #secret-runs" in result.stdout
    emu.invite_bot("secret-runs")
    # Without groups:read a private channel is found by its ID only.
    fixed = cli("check", "--channel", emu.channel_id("secret-runs"), emu=emu)
    assert fixed.returncode == 0, fixed.stdout
    assert "(C0000004, private) found" in fixed.stdout


@pytest.mark.slack_emulator(scopes=("chat:write", "files:write", "channels:read"))
def test_check_public_channel_the_bot_cannot_join(emu: SlackEmulator) -> None:
    emu.add_channel("outside", member=False)
    result = cli("check", "--channel", "outside", emu=emu)
    assert result.returncode == 1
    assert "cannot join by itself" in result.stdout
    assert "`/invite @ppe-slacklog-bot` in #outside" in result.stdout


def test_check_public_channel_the_bot_can_join(emu: SlackEmulator) -> None:
    emu.add_channel("outside", member=False)
    result = cli("check", "--channel", "outside", emu=emu)
    assert result.returncode == 0, result.stdout
    assert "joins by itself (channels:join)" in result.stdout


def test_check_rejected_and_missing_token(emu: SlackEmulator) -> None:
    wrong = "xoxb-0000-wrong-token-value"
    result = cli("check", emu=emu, token=wrong)
    assert result.returncode == 1
    assert "✗ token not accepted (invalid_auth)" in result.stdout
    assert wrong not in result.stdout + result.stderr
    assert "wrong-token" not in result.stdout + result.stderr
    env_less = cli("check")
    assert env_less.returncode == 1
    assert "✗ SLACK_BOT_TOKEN is not set" in env_less.stdout


def test_check_post_sends_a_message_and_a_thread_reply(emu: SlackEmulator) -> None:
    result = cli("check", "--channel", "general", "--post", emu=emu)
    assert result.returncode == 0, result.stdout
    [parent] = emu.top_level("general")
    assert parent.text.startswith("✅ ppe-slacklog check: this is a test message")
    thread = emu.thread("general", parent.ts)
    assert [m.text for m in thread[1:]] == [
        "↳ ppe-slacklog check: a reply in the thread works too."
    ]
    assert "posted a test message" in result.stdout


def test_check_live_webhook_without_and_with_post(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    secret = url.rsplit("/", 1)[1]
    probe = cli("check", "--webhook", url)
    assert probe.returncode == 0, probe.stdout
    assert "is live" in probe.stdout
    assert emu.messages("alerts") == []  # probing posts nothing
    posted = cli("check", "--webhook", url, "--post")
    assert posted.returncode == 0, posted.stdout
    assert [m.text for m in emu.messages("alerts")] == [
        "✅ ppe-slacklog check: this webhook works; training runs post here."
    ]
    for result in (probe, posted):
        assert secret not in result.stdout + result.stderr


def test_check_revoked_webhook(emu: SlackEmulator) -> None:
    url = emu.webhook_url("alerts")
    emu.revoke_webhook(url)
    for extra in ((), ("--post",)):
        result = cli("check", "--webhook", url, *extra)
        assert result.returncode == 1
        assert "does not work (no_service)" in result.stdout or (
            "refused the test message (no_service)" in result.stdout
        )
        assert "was revoked or mistyped" in result.stdout
        assert url.rsplit("/", 1)[1] not in result.stdout + result.stderr
    assert emu.messages("alerts") == []


# ------------------------------------------------------------------- replay


def write_events(path: Path, *, fail_at: int | None = None) -> list[dict[str, object]]:
    """A real training logged by JsonFormatter only (no Slack); its lines."""
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(ppe_slacklog.JsonFormatter())
    training = logging.getLogger(ppe_slacklog.DEFAULT_LOGGER)
    training.addHandler(file_handler)
    training.setLevel(logging.INFO)
    training.propagate = False
    other = logging.getLogger("myproject")
    other.addHandler(file_handler)
    try:
        manager = make_manager(max_epochs=3, iters_per_epoch=2)
        manager.extend(
            ppe_slacklog.Slack(channel="unused", msg="Epoch #{manager.epoch}"),
            trigger=(1, "epoch"),
        )
        other.warning("disk %s is full", "/data")
        with contextlib.suppress(ValueError):
            run_training(manager, lambda m: {"loss": 1.0 / (m.iteration + 1)}, fail_at)
    finally:
        file_handler.close()
        training.removeHandler(file_handler)
        other.removeHandler(file_handler)
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slack_emulator(rate_limits=False)
def test_replay_twice_posts_each_event_once(emu: SlackEmulator, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = write_events(path)
    events = [line for line in lines if "ppe_event" in line]
    assert [e["ppe_event"] for e in events] == [
        "start",
        "trigger",
        "trigger",
        "trigger",
        "end",
    ]
    first = cli("replay", str(path), "--channel", "experiment-progress", emu=emu)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "5 training events in 1 run(s); 1 other records skipped" in first.stdout
    [parent] = emu.top_level("experiment-progress")
    assert start_text(parent).startswith("🏃 *Training started!*")
    assert "Replayed from `events.jsonl`" in parent.text
    # The replayed end event settles the live card.
    assert parent.text.startswith("✅ Finished · ")
    thread = thread_texts(emu, "experiment-progress", parent.ts)
    assert thread[1:] == [
        "Epoch #1",
        "Epoch #2",
        "Epoch #3",
        "✅ *Training finished!* (epoch 3, iteration 6, after 0:00:00)",
    ]
    assert parent.metadata is not None
    assert parent.metadata["event_payload"]["run_id"] == events[0]["run_id"]
    # Every message of the channel, the card's chart included.
    posted = emu.messages("experiment-progress")

    again = cli("replay", str(path), "--channel", "experiment-progress", emu=emu)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "all 5 events are in its thread already" in again.stdout
    assert "Done: 0 events posted" in again.stdout
    assert [m.ts for m in emu.messages("experiment-progress")] == [m.ts for m in posted]


@pytest.mark.slack_emulator(rate_limits=False)
def test_replay_continues_an_interrupted_replay(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path, fail_at=5)
    lines = path.read_text().splitlines(keepends=True)
    head = tmp_path / "head.jsonl"
    head.write_text("".join(lines[:3]))  # the warning, start, epoch 1
    assert cli("replay", str(head), "--channel", "alerts", emu=emu).returncode == 0
    result = cli("replay", str(path), "--channel", "alerts", emu=emu)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "thread found, 2 of 4 events there" in result.stdout
    [parent] = emu.top_level("alerts")[:1]
    texts = [m.text for m in emu.thread("alerts", parent.ts)]
    assert texts[1:3] == ["Epoch #1", "Epoch #2"]
    assert texts[3].startswith("❌ *Error during training.*\nValueError: boom")
    assert "Traceback (most recent call last)" in texts[3]
    assert len(texts) == 4
    # The error is broadcast to the channel too, as live.
    assert any(m.reply_broadcast for m in emu.messages("alerts"))


@pytest.mark.slack_emulator(scopes=("chat:write", "files:write", "channels:read"))
def test_replay_without_history_scope_posts_nothing(
    emu: SlackEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path)
    result = cli("replay", str(path), "--channel", "general", emu=emu)
    assert result.returncode == 1
    assert "add `channels:history`" in result.stderr
    assert emu.messages() == []


# ----------------------------------------------------------------- emulator


def test_emulator_subcommand_serves_until_sigint() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "ppe_slacklog", "emulator", "--channel", "runs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Channels:"):
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else ""
            lines.append(line.rstrip("\n"))
        exports = dict(
            line[len("export ") :].split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        base_url = exports["SLACK_API_URL"]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/")
        assert f"Thread viewer: {base_url[: -len('api/')]}viewer" in lines
        assert "#runs" in lines[-1]
        from slack_sdk import WebClient

        client = WebClient(token=exports["SLACK_BOT_TOKEN"], base_url=base_url)
        assert client.auth_test()["ok"]
        assert client.chat_postMessage(channel="runs", text="hi")["ok"]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Slack emulator stopped." in out
    assert "Traceback" not in err
