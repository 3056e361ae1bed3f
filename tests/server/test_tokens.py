"""Tokens and roles: who may call what, the messages when they may not, tokens stored as hashes,
expiry bounded, revocation at once."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from supportdesk.client.remote import ServerError


def test_token_expiry_is_bounded_and_a_bad_stored_one_does_not_break_the_list(light_team):
    from typer.testing import CliRunner

    from supportdesk.cli import app

    runner = CliRunner()
    data_dir = str(light_team.settings.data_dir)

    def cli(*args, server=None):
        env = {"COLUMNS": "200", "SUPPORTDESK_TOKEN": light_team.tokens["ada"]}
        return runner.invoke(app, [*(["--server", server] if server else ["--data-dir", data_dir]), *args], env=env)

    for days in ("inf", "nan", "1e308", "0", "-1", "3651"):
        for server in (None, light_team.url):  # on the server's machine, and through the API
            refused = cli("serve", "token", "create", "--name", "eve", "--expires-days", days, server=server)
            assert refused.exit_code == 1, (days, server, refused.output)
            assert "--expires-days" in refused.output and "3650" in refused.output
            assert isinstance(refused.exception, SystemExit)  # a clean exit, not a crash
    admin = {"Authorization": f"Bearer {light_team.tokens['ada']}"}
    for days in (1e308, 0, 3651):
        api = httpx.post(f"{light_team.url}/v1/tokens", headers=admin, json={"name": "eve", "role": "agent",
                                                                             "expires_days": days})
        assert api.status_code == 422 and "3650" in api.json()["detail"]
    made = cli("serve", "token", "create", "--name", "eve", "--expires-days", "30")
    assert made.exit_code == 0 and made.stdout.strip().startswith("sdk_")
    # A row written before expiries were bounded (infinity): listed as invalid, refused as expired.
    db = sqlite3.connect(light_team.settings.data_dir / "history.sqlite3")
    db.execute("UPDATE tokens SET expires_at = 9e999 WHERE name = 'eve'")
    db.commit()
    db.close()
    for server in (None, light_team.url):
        listed = cli("serve", "token", "list", server=server)
        assert listed.exit_code == 0, listed.output
        assert any("eve" in line and "invalid" in line for line in listed.stdout.splitlines()), listed.stdout
        assert "alice" in listed.stdout
    rows = httpx.get(f"{light_team.url}/v1/tokens", headers=admin).json()
    assert next(r for r in rows if r["name"] == "eve")["invalid"] is True
    late = httpx.get(f"{light_team.url}/v1/status", headers={"Authorization": f"Bearer {made.stdout.strip()}"})
    assert late.status_code == 401 and "expired" in late.json()["detail"]


def test_tokens_roles_and_their_messages(team):
    url = team.url
    assert httpx.get(f"{url}/health").json()["ok"]
    no_token = httpx.get(f"{url}/v1/status")
    assert no_token.status_code == 401 and "SUPPORTDESK_TOKEN" in no_token.json()["detail"]
    wrong = httpx.get(f"{url}/v1/status", headers={"Authorization": "Bearer sdk_nope"})
    assert wrong.status_code == 401 and "not recognised" in wrong.json()["detail"]
    alice = team.client("alice")
    with pytest.raises(ServerError) as refused:  # an agent may not reload
        alice.reload_kb()
    assert isinstance(refused.value, ServerError) and refused.value.status == 403
    assert "alice is an agent" in str(refused.value) and "admin role" in str(refused.value)
    with pytest.raises(ServerError, match="needs the trainer role"):
        alice.switch_model(adapter="none")
    # Only hashes are stored; the admin lists tokens without their values, and revokes at once.
    db = sqlite3.connect(team.settings.data_dir / "history.sqlite3")
    stored = " ".join(str(v) for row in db.execute("SELECT * FROM tokens") for v in row)
    assert all(token not in stored for token in team.tokens.values())
    ada = team.client("ada")
    listed = ada._call("GET", "/v1/tokens")
    assert {t["name"] for t in listed} == {"alice", "bob", "tia", "ada"} and "token" not in json.dumps(listed)
    created = ada._call("POST", "/v1/tokens", json={"name": "carol", "role": "agent"})
    assert team.core.tokens.verify(created["token"]).name == "carol"
    with pytest.raises(ServerError, match="already exists"):
        ada._call("POST", "/v1/tokens", json={"name": "carol", "role": "agent"})
    with pytest.raises(ServerError, match="unknown role"):
        ada._call("POST", "/v1/tokens", json={"name": "dave", "role": "root"})
    ada._call("DELETE", "/v1/tokens/carol")
    revoked = httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {created['token']}"})
    assert revoked.status_code == 401
    expired = team.core.tokens.create("eve", "agent", expires_days=1)
    db.execute("UPDATE tokens SET expires_at = 1 WHERE name = 'eve'")
    db.commit()
    late = httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {expired}"})
    assert late.status_code == 401 and "expired" in late.json()["detail"]
