"""Insights and knowledge gaps through the team server: trainers and admins see the team's, agents their own."""

from __future__ import annotations

import pytest
from test_insights import DAY2, fill

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
