"""Insights and knowledge gaps through the team server: trainers and admins see the team's, agents their own."""

from __future__ import annotations

import pytest
from fixtures.insights_history import DAY2, fill

from supportdesk.client.remote import ServerError


def test_server_trainers_see_the_team_agents_their_own(team):
    fill(team.core.session.history)
    alice, tia, ada = team.client("alice"), team.client("tia"), team.client("ada")
    mine = alice.insights()
    assert mine["agent"] == "alice" and mine["total"]["questions"] == 4
    assert all(m in range(1, 100) for g in mine["gaps"] for m in g["members"])
    everyone = tia.insights(since=DAY2)
    assert everyone["agent"] is None and everyone["total"]["questions"] == 3
    assert ada.insights()["total"]["questions"] == 7
    assert sum(g["size"] for g in tia.gaps()) == 3
    with pytest.raises(ServerError, match="trainer role"):
        alice.gaps()
    with pytest.raises(ServerError, match="--since"):
        tia._call("GET", "/v1/insights", params={"since": "whenever"})


def test_cli_gaps_and_insights_through_the_server(team, monkeypatch):
    import json

    from typer.testing import CliRunner

    from supportdesk.cli import app

    fill(team.core.session.history)
    runner = CliRunner()
    monkeypatch.setenv("SUPPORTDESK_SERVER", team.url)

    def cli(name, *args):
        return runner.invoke(app, list(args), env={"SUPPORTDESK_TOKEN": team.tokens[name], "COLUMNS": "200"})

    gaps = cli("tia", "gaps", "--json")
    assert gaps.exit_code == 0, gaps.output
    assert sum(json.loads(line)["size"] for line in gaps.stdout.splitlines()) == 3
    refused = cli("alice", "gaps")
    assert refused.exit_code == 1 and "trainer role" in refused.output and "Traceback" not in refused.output
    mine = cli("alice", "insights", "--json")
    assert mine.exit_code == 0, mine.output
    assert json.loads(mine.stdout)["total"]["questions"] == 4
    shown = cli("tia", "insights", "--since", "2026-12-11")
    assert shown.exit_code == 0 and "2026-12-11" in shown.output and "2026-12-10" not in shown.output
