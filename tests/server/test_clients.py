"""The server seen by its clients: RemoteSession, the CLI and the TUI with --server, a server lost
and found again, a URL's password never shown."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from conftest import ScriptedBackend, grounded_reply, send, wait_until
from fixtures.team_server import running

from supportdesk.client.remote import RemoteSession, ServerUnreachable
from supportdesk.server.core import ServerCore


def test_a_server_url_with_a_password_is_never_printed_with_it(cli, settings_factory, small_kb, monkeypatch):
    """--server http://user:PASSWORD@host: the password is masked in every message, as history.url's is."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://agent:s3cret-pw@127.0.0.1:{port}"
    monkeypatch.setenv("SUPPORTDESK_TOKEN", "sdk_whatever")
    for args in (["kb", "stats"], ["ask", "hello"], ["history", "list"], ["adapter", "list"],
                 ["serve", "token", "list"], ["kb", "build"]):
        result = cli("--server", url, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "s3cret" not in result.output and f"agent:***@127.0.0.1:{port}" in result.output, (args, result.output)
    said: list[str] = []
    session = RemoteSession(settings_factory(small_kb), url + "/", "sdk_whatever")
    with pytest.raises(ServerUnreachable) as caught:
        session.start(said.append)
    assert "s3cret" not in str(caught.value) and said == [f"connecting to http://agent:***@127.0.0.1:{port}"]
    with pytest.raises(ServerUnreachable) as caught:
        list(session.ask("hello"))
    assert "s3cret" not in str(caught.value) and "agent:***@" in str(caught.value)
    session.close()


def test_a_client_that_loses_the_server_says_so_and_reconnects(sample_index, tmp_path):
    base, kb = sample_index
    settings = base.model_copy(update={"data_dir": tmp_path / "data"})
    core = ServerCore(settings, backend=ScriptedBackend(grounded_reply), kb=kb)
    core.start()
    token = core.tokens.create("alice", "agent")
    with running(core) as url:
        port = int(url.rsplit(":", 1)[1])
        client = RemoteSession(settings, url, token)
        client.start()
        answer = client.ask("How many days do I have to return a router?")
        list(answer)
    # The server is gone: the status says so, asking fails with a clear message.
    assert wait_until(lambda: "retrying in" in (client.status().connection or ""), timeout=5)
    with pytest.raises(ServerUnreachable, match="cannot reach the supportdesk server"):
        list(client.ask("hello?"))
    core.close()
    # Restarted on the same port with the same data: the history is all there, the feed returns.
    core = ServerCore(settings, backend=ScriptedBackend(grounded_reply), kb=kb)
    core.start()
    with running(core, port=port):
        assert wait_until(lambda: client.status().connection is None, timeout=20)
        messages = client.history.messages(client.history.latest_conversation())
        assert [m.role for m in messages] == ["user", "assistant"]
    client.close()
    core.close()


async def test_the_tui_on_a_server_shows_the_same_panels(team):
    from supportdesk.client import session_factory
    from supportdesk.tui.app import SupportDeskApp
    from supportdesk.tui.widgets.latency import LatencyMeter
    from supportdesk.tui.widgets.sources import SourceItem

    app = SupportDeskApp(team.settings, session_factory(team.url, team.tokens["alice"]))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.session is not None:
                break
        assert isinstance(app.session, RemoteSession)
        view = await send(pilot, app, "How many days do I have to return a router?")
        assert view.data["kind"] == "grounded" and "45 days" in view.text
        assert str(view.query_one("#badge").render()).strip() == "grounded"
        assert any(item.citation.get("cited") for item in app.query(SourceItem))
        assert app.query_one(LatencyMeter).recent and "queue_ms" in view.data["timings"]
        await pilot.press("ctrl+t")  # 👍 stored on the server
        await pilot.pause(0.3)
        stored = team.core.session.history.messages(app.session.conversation_id)
        assert stored[-1].feedback == 1 and stored[-1].asked_by == "alice"
        # A trainer switches the adapter elsewhere: this TUI's status line follows, no restart.
        before = str(app.query_one("#status").render())
        assert "adapter none" in before
        team.core.session.switch_model = lambda backend=None, adapter=None: None  # (no second model here)
        team.model.adapter_name = "voice-v2"
        for _ in range(40):
            await pilot.pause(0.05)
            if "voice-v2" in str(app.query_one("#status").render()):
                break
        assert "adapter voice-v2" in str(app.query_one("#status").render())
        # The server goes away: the question typed is kept in the prompt and the status says so.
        app.session.url = "http://127.0.0.1:9"
        app.session._http.base_url = "http://127.0.0.1:9"
        app.query_one("#prompt").insert("Is the Perch covered by the warranty?")
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.05)
            if app.query_one("#prompt").text:
                break
        assert app.query_one("#prompt").text == "Is the Perch covered by the warranty?"
        assert any("cannot reach the supportdesk server" in n.message for n in app._notifications)


def test_cli_commands_go_through_the_server(team, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from supportdesk.cli import app

    runner = CliRunner()
    monkeypatch.setenv("SUPPORTDESK_SERVER", team.url)

    def cli(token, *args):
        return runner.invoke(app, list(args), env={"SUPPORTDESK_TOKEN": token, "COLUMNS": "200"})

    agent, trainer, admin = team.tokens["alice"], team.tokens["tia"], team.tokens["ada"]
    asked = cli(agent, "ask", "--json", "How many days do I have to return a router?")
    assert asked.exit_code == 0, asked.output
    row = json.loads(asked.stdout.strip().splitlines()[-1])
    assert row["route"] == "grounded" and row["citations"] and "timings" in row
    # A multi-turn set answered by the server: each line after its own history, one JSON line each,
    # and nothing of it stored in the history.
    stored_before = len(team.core.session.history.conversations(limit=1000))
    turns = tmp_path / "turns.jsonl"
    turns.write_text("\n".join(json.dumps(line) for line in [
        {"history": [], "question": "How many days do I have to return a router?"},
        {"history": [{"role": "user", "text": "How many days do I have to return a router?"},
                     {"role": "agent", "text": "45 days from delivery [1]."}], "question": "And for a Perch?"},
        {"history": [], "question": "   "},
    ]) + "\n")
    evaluated = cli(agent, "ask", "--conversations", str(turns), "--json")
    assert evaluated.exit_code == 0, evaluated.output
    rows = [json.loads(line) for line in evaluated.stdout.strip().splitlines()]
    assert len(rows) == 3 and rows[0]["route"] == "grounded" and rows[1]["route"] == "grounded"
    assert "error" in rows[2]
    assert len(team.core.session.history.conversations(limit=1000)) == stored_before
    both = httpx.post(f"{team.url}/v1/ask", json={"question": "hi", "conversation_id": 1, "history": []},
                      headers={"Authorization": f"Bearer {agent}"})
    assert both.status_code == 422 and "not both" in both.json()["detail"]
    found = cli(agent, "kb", "search", "--json", "warranty")
    assert found.exit_code == 0 and json.loads(found.stdout)["hits"][0]["source"]
    stats = cli(agent, "kb", "stats", "--json")
    assert stats.exit_code == 0 and json.loads(stats.stdout)["chunks"] > 0
    listed = cli(agent, "history", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout.splitlines()[0])["owner"] == "alice"
    assert cli(agent, "adapter", "list").exit_code == 0
    team_wide = cli(agent, "history", "list", "--everyone")
    assert team_wide.exit_code == 1 and "trainer" in team_wide.output
    team_wide = cli(trainer, "history", "list", "--everyone")
    assert team_wide.exit_code == 0 and "alice" in team_wide.stdout
    refused = cli(agent, "kb", "build")
    assert refused.exit_code == 1 and "needs the admin role" in refused.output
    built = cli(admin, "kb", "build", "--json")
    assert built.exit_code == 0, built.output
    exported = cli(trainer, "history", "export")
    assert exported.exit_code == 0 and json.loads(exported.stdout.splitlines()[0])["messages"]
    local = cli(agent, "kb", "calibrate")
    assert local.exit_code == 1 and "does not go through --server" in local.output
    token = cli(admin, "serve", "token", "create", "--name", "zed", "--role", "agent")
    assert token.exit_code == 0 and token.stdout.strip().startswith("sdk_")
    assert "zed" in cli(admin, "serve", "token", "list").stdout
    assert cli(admin, "serve", "token", "revoke", "zed").exit_code == 0
    assert "zed" not in cli(admin, "serve", "token", "list").stdout
    unknown = cli(admin, "serve", "token", "revoke", "no such?name")  # the whole name reaches the server
    assert unknown.exit_code == 1 and "no active token named 'no such?name'" in unknown.output
    bad = cli("sdk_wrong", "kb", "stats")
    assert bad.exit_code == 1 and "token not recognised" in bad.output and "Traceback" not in bad.output
    down = runner.invoke(app, ["--server", "http://127.0.0.1:9", "kb", "stats"], env={"SUPPORTDESK_TOKEN": agent})
    assert down.exit_code == 1 and "cannot reach the supportdesk server" in down.output
