"""The brand profile: one place for who the bot speaks for; nothing of the sample brand in src/."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLE_KB

from supportdesk.brand import BRAND_FILE, DEFAULT_ASSISTANT, load_brand
from supportdesk.router.cues import fact_cues

SAMPLE_PROFILE = tomllib.loads((SAMPLE_KB / BRAND_FILE).read_text())["brand"]


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z][A-Za-z+]*", text) if len(w) > 3]


def sample_brand_strings() -> set[str]:
    """What of the sample brand must live in its profile file, never in code: the company and
    assistant names, product names, the sign-off, contacts' phone numbers, adapter and transcripts."""
    found = {w.lower() for w in _words(SAMPLE_PROFILE["company"] + " " + SAMPLE_PROFILE["assistant_name"])}
    found |= {p.lower() for p in SAMPLE_PROFILE["products"]}
    found |= {SAMPLE_PROFILE["sign_off"].split("—")[0].strip(" !").lower(), SAMPLE_PROFILE["adapter"],
              Path(SAMPLE_PROFILE["transcripts"]).name}
    for contact in SAMPLE_PROFILE["contacts"]:
        found |= set(re.findall(r"\d[\d -]{6,}\d", contact))
    found -= {"networks", "care"}  # plain English on their own
    return found


def test_src_holds_nothing_of_the_sample_brand():
    strings = sample_brand_strings()
    assert {"kestrel", "aerie", "perch", "talon", "roost", "flock", "happy surfing", "1-888-537-8735"} <= strings
    offenders = []
    for path in sorted((ROOT / "src").rglob("*")):
        if not path.is_file() or path.suffix not in (".py", ".tcss", ".toml", ".json", ".txt", ".md", ".jsonl"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace").lower()
        numbers = {re.sub(r"\D", "", m) for m in re.findall(r"\d[\d -]{6,}\d", text)}
        for s in strings:
            if s[0].isdigit():  # a phone number, however it is written
                hit = re.sub(r"\D", "", s) in numbers
            else:
                hit = re.search(rf"(?<![a-z]){re.escape(s)}(?![a-z])", text) is not None
            if hit:
                offenders.append(f"{path.relative_to(ROOT)}: {s}")
    assert offenders == []


def _kb_with_profile(tmp_path: Path, text: str) -> Path:
    kb = tmp_path / "kb"
    kb.mkdir(exist_ok=True)
    (kb / BRAND_FILE).write_text(text)
    return kb


PROFILE = """
[brand]
company = "Acme Routers"
assistant_name = "Acme Help"
scope = "Acme routers and your Acme orders"
products = ["Zephyr", "Gust"]
contacts = ["at 1-800-555-0199"]
sign_off = "Stay connected! — Acme Help"
adapter = "acme-voice"
transcripts = "../acme.jsonl"
[brand.replies]
greeting = ["Hello from Acme Help!", "Hi, Acme Help here."]
"""


def test_profile_file_then_settings_then_neutral_defaults(settings_factory, tmp_path, monkeypatch):
    kb = _kb_with_profile(tmp_path, PROFILE)
    brand = load_brand(settings_factory(kb))
    assert (brand.company, brand.assistant_name, brand.products) == ("Acme Routers", "Acme Help", ("Zephyr", "Gust"))
    assert brand.source == str(kb / BRAND_FILE) and brand.origins["company"] == "file"
    assert brand.transcripts == (tmp_path / "acme.jsonl").resolve()  # relative to the profile file
    assert brand.reply("greeting", "hi") in ("Hello from Acme Help!", "Hi, Acme Help here.")
    assert "1-800-555-0199" in brand.handoff_text() and brand.keep_numbers() == ("18005550199",)
    # A setting wins, key by key; the rest still comes from the file.
    monkeypatch.setenv("SUPPORTDESK_BRAND__COMPANY", "Acme Europe")
    both = load_brand(settings_factory(kb))
    assert both.company == "Acme Europe" and both.assistant_name == "Acme Help"
    assert both.origins == {**brand.origins, "company": "settings"}
    assert both.source == f"{kb / BRAND_FILE} + settings [brand]"
    # No file, no settings: a neutral assistant, a generic hand-off, no contacts.
    monkeypatch.delenv("SUPPORTDESK_BRAND__COMPANY")
    empty = tmp_path / "empty-kb"
    empty.mkdir()
    neutral = load_brand(settings_factory(empty))
    assert neutral.is_neutral and neutral.assistant_name == DEFAULT_ASSISTANT and neutral.company == ""
    assert neutral.source == "built-in neutral defaults" and neutral.contacts == () and neutral.adapter is None
    assert neutral.handoff_text() == "I'm passing this to a member of our support team, who will get back to you here."
    assert "automated" in neutral.reply("identity", "are you a bot?")


def test_the_sample_kb_ships_its_profile(settings_factory):
    brand = load_brand(settings_factory(SAMPLE_KB))
    assert brand.company == "Kestrel Networks" and brand.assistant_name == "Kestrel Care" and not brand.warnings
    assert brand.adapter == "kestrel-voice" and brand.transcripts == ROOT / "transcripts" / "kestrel_care.jsonl"
    assert brand.keep_numbers() == ("18885378735", "08000487735")
    for intent in ("greeting", "thanks", "goodbye", "compliment", "identity", "abuse", "injection", "decline", "other"):
        assert len(brand.approved(intent)) >= 2, intent  # several each: it should not sound canned


@pytest.mark.parametrize(("text", "warning"), [
    ("[brand\ncompany = 1", "is not valid TOML"),
    ("[brand]\ncompany = 42\n", "[brand] company: Input should be a valid string"),
    ("[brand]\ncompnay = 'Acme'\n", "unknown key 'compnay' is ignored; did you mean 'company'?"),
    ("[brand]\nmodel_codes = ['ab(']\n", "model_codes: 'ab(' is not a valid regular expression"),
    ("[brand.replies]\ngreting = ['hi']\n", "unknown intent 'greting'"),
    ("[brand.replies]\ngreeting = ['hi {name}']\n", "unknown placeholder '{name}'"),
])
def test_a_bad_profile_is_named_with_file_and_key_and_never_crashes(settings_factory, tmp_path, text, warning):
    kb = _kb_with_profile(tmp_path, text)
    brand = load_brand(settings_factory(kb))
    assert any(warning in w and str(kb / BRAND_FILE) in w for w in brand.warnings), brand.warnings
    assert brand.reply("greeting", "hi")  # still answers, with what is valid


def test_config_and_kb_stats_show_the_profile_and_where_it_comes_from(cli, small_kb):
    (small_kb / BRAND_FILE).write_text(PROFILE)
    shown = cli("config")
    assert shown.exit_code == 0 and f"brand profile: Acme Routers (Acme Help) from {small_kb / BRAND_FILE}" in shown.output
    data = json.loads(cli("config", "--json").stdout)
    assert data["brand.profile"]["source"] == str(small_kb / BRAND_FILE)
    assert data["brand.company"]["value"] is None  # nothing set in settings: the file decides
    assert cli("kb", "build").exit_code == 0
    stats = cli("kb", "stats")
    assert stats.exit_code == 0 and "Acme Routers (Acme Help) from" in stats.output
    assert json.loads(cli("kb", "stats", "--json").stdout)["brand"]["company"] == "Acme Routers"


LEGACY_CODE = re.compile(r"\b(?:k[rpt]-?\d{3}|ke-?\d{3}|ks-\d+|kc-\d+|hw [ab])\b", re.IGNORECASE)
LEGACY_PRODUCT = re.compile(
    r"\b(?:aerie|perch|talon|roost|guardian|kestrelos|flock|care\+|care plus|fleet|secure dns|"
    r"router|satellite|mesh|firmware|modem|gateway|sim|apn|vpn|wireguard|dns|ipv6|usb|led|light|wi-?fi|ssid|"
    r"port|nat|bridge|dhcp|subnet|pppoe|vlan|ethernet|backhaul|band|ghz|password|account|pin|qr|voucher)s?\b",
    re.IGNORECASE,
)


def test_router_cues_come_from_the_profile_and_match_the_old_ones(settings_factory):
    """The product terms and model codes moved from code into the sample profile: every message of
    the labelled sets gets the same cues as before (so route accuracy cannot move)."""
    lexicon = load_brand(settings_factory(SAMPLE_KB)).lexicon
    texts = [json.loads(line)["text"] for name in ("route_set.jsonl", "social_set.jsonl")
             for line in (ROOT / "eval" / name).read_text().splitlines()]
    for text in texts:
        cues = fact_cues(text, lexicon)
        assert (cues["codes"], cues["products"]) == (len(LEGACY_CODE.findall(text)), len(LEGACY_PRODUCT.findall(text))), text
    # Without a profile only generic support words and code shapes count.
    assert fact_cues("my talon shows KE-404")["products"] == 0 and fact_cues("my talon shows KE-404")["codes"] == 1


@pytest.mark.slow
def test_route_evaluation_routes_with_the_profiles_cues(sample_index):
    """`eval --routes-only` builds its router with the brand profile's lexicon, as the pipeline does:
    with the generic cues alone held-out route accuracy fell from 0.973 to 0.965."""
    from typer.testing import CliRunner

    from supportdesk.cli import app

    settings, _ = sample_index
    result = CliRunner().invoke(app, ["--data-dir", str(settings.data_dir), "--kb", str(settings.kb_dir),
                                      "eval", "--routes-only", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["route_accuracy_heldout"] >= 0.97
