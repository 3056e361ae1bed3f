"""Transcripts and adapters from careless hands: BOMs, other encodings, PII in every format,
names that climb out of the data dir, adapters that are not what their manifest says."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from fixtures.outcome import no_traceback

from supportdesk.training.pii import Scrubber
from supportdesk.training.prepare import Problem, prepare, read_csv

# The sample company's own published numbers (its brand profile's contacts): not personal data.
SAMPLE_NUMBERS = ("18885378735", "08000487735")

DATA = Path(__file__).resolve().parents[1] / "data"


def test_csv_with_a_utf8_bom_is_read(tmp_path):
    """Defect 6: what spreadsheet tools export."""
    path = tmp_path / "export.csv"
    path.write_bytes("\ufeffcustomer,agent\nMy router is slow,Sorry to hear that! Let's check the channel.\n".encode())
    problems: list[Problem] = []
    conversations = list(read_csv(path, problems))
    assert problems == [] and len(conversations) == 1
    assert conversations[0].messages[0] == {"role": "user", "content": "My router is slow"}


def test_csv_in_another_encoding_is_a_problem_with_file_and_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("customer,agent\nhello,hi\nCaf\xe9 wifi,Bonjour\n".encode("latin-1"))
    dataset = prepare([path])
    assert [str(p) for p in dataset.problems] == [
        f"{path}:3: file: not UTF-8 (byte 0xe9); export the sheet as 'CSV UTF-8' and try again"
    ]


def test_prepare_cli_reports_bad_csv_without_a_traceback(tmp_path, settings_factory):
    from typer.testing import CliRunner

    from supportdesk.cli import app

    path = tmp_path / "latin1.csv"
    path.write_bytes("customer,agent\nCaf\xe9,Bonjour\n".encode("latin-1"))
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), "adapter", "prepare", str(path)])
    assert result.exit_code == 1 and "not UTF-8" in result.stderr and "no usable conversations" in result.stderr
    no_traceback(result)


def _cases() -> list[dict]:
    lines = (DATA / "pii_cases.jsonl").read_text(encoding="utf-8").splitlines()
    return [case for case in map(json.loads, lines) if "text" in case]


def test_pii_recall_on_a_labelled_file_of_many_formats():
    """Defect 7: phones in national and international forms, IBANs, SSNs, IP/MAC, profile URLs,
    order numbers. Recall over every labelled string; every 'keep' string (the company's own
    numbers, model names, dates, prices, gateway addresses) must survive."""
    found = missed = 0
    misses, damaged = [], []
    by_kind: dict[str, list[int]] = {}
    for case in _cases():
        out = Scrubber(keep_numbers=SAMPLE_NUMBERS)(case["text"])
        for span in case.get("pii", []):
            hit = span not in out and f"[{case['kind']}]" in out
            found += hit
            missed += not hit
            by_kind.setdefault(case["kind"], [0, 0])[0 if hit else 1] += 1
            if not hit:
                misses.append((case["text"], out))
        damaged += [(case["text"], out) for keep in case.get("keep", []) if keep not in out]
    recall = found / (found + missed)
    print(f"\nPII recall {recall:.3f} ({found}/{found + missed}); by kind (found, missed): {by_kind}")
    assert recall >= 0.95, misses
    assert damaged == []


def test_labelled_ssn_without_separators_is_scrubbed_and_bare_nine_digits_are_kept():
    """Issue 30 item 2: "ssn: 536221234" was kept; a 9-digit number with no SSN label is not one."""
    ssn_cases = [c for c in _cases() if c["kind"] == "SSN"]
    assert any(not any(ch in span for ch in "- ") for c in ssn_cases for span in c["pii"])
    for case in ssn_cases:
        out = Scrubber()(case["text"])
        assert all(span not in out for span in case["pii"]) and "[SSN]" in out, (case["text"], out)
    bare = [c for c in _cases() if c["kind"] == "NONE" and any(k.isdigit() and len(k) == 9 for k in c.get("keep", []))]
    assert bare
    for case in bare:
        out = Scrubber()(case["text"])
        assert out == case["text"], out
    scrub = Scrubber()
    assert scrub("ssn: 536221234") == "ssn: [SSN]" and scrub.counts["SSN"] == 1


def test_order_numbers_are_orders_not_phones():
    assert Scrubber()("order #987654321 never arrived") == "order #[ORDER] never arrived"


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "a/b", "..", ".hidden", "", "x" * 80])
def test_dataset_and_adapter_names_are_plain_names(tmp_path, name):
    from typer.testing import CliRunner

    from supportdesk.cli import app

    src = DATA / "transcripts.csv"
    runner = CliRunner()
    data = tmp_path / "data"
    for args in (["adapter", "prepare", str(src), "--name", name], ["adapter", "build", name],
                 ["adapter", "activate", name]):
        result = runner.invoke(app, ["--data-dir", str(data), *args])
        assert result.exit_code != 0, (args, result.output)
        assert "not a plain name" in result.stderr or "no adapter" in result.stderr or "Missing argument" in result.output
        no_traceback(result)
    assert not (tmp_path / "x").exists() and not any(p.name == "x" for p in tmp_path.parent.iterdir())


def _adapter(folder: Path, metrics: dict | None = None) -> Path:
    from supportdesk.checksum import sha256_file
    from supportdesk.training.gguf_lora import write_gguf_lora

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pairs = {f"model.layers.{i}.self_attn.q_proj": ((rng.standard_normal((8, 576)) * 0.05).astype(np.float32),
                                                     (rng.standard_normal((576, 8)) * 0.05).astype(np.float32))
             for i in range(30)}
    write_gguf_lora(folder / "adapter.gguf", pairs, alpha=16, n_layers=30, n_head=9, n_head_kv=3)
    manifest = {"name": folder.name, "adapter_sha256": sha256_file(folder / "adapter.gguf"),
                "metrics": metrics or {"base_perplexity": 20.0, "adapter_perplexity": 10.0}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def adapter_cli(tmp_path, settings_factory):
    from typer.testing import CliRunner

    from supportdesk.cli import app

    adapters = tmp_path / "adapters"
    _adapter(adapters / "voice")

    def invoke(data_dir: Path, *args: str):
        os.environ["SUPPORTDESK_ADAPTERS_DIR"] = str(adapters)
        try:
            return CliRunner().invoke(app, ["--data-dir", str(data_dir), "adapter", *args])
        finally:
            del os.environ["SUPPORTDESK_ADAPTERS_DIR"]

    return adapters, invoke


def test_activate_with_a_data_dir_that_is_a_file(tmp_path, adapter_cli):
    """Defect 10; since issue 30 item 11 the one message every command gives for such a data dir."""
    _, invoke = adapter_cli
    not_a_dir = tmp_path / "data-file"
    not_a_dir.write_text("oops")
    result = invoke(not_a_dir, "activate", "voice")
    assert result.exit_code == 1 and f"the data dir {not_a_dir} is a file, not a folder" in result.stderr
    no_traceback(result)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only modes; the file case covers the path")
def test_activate_with_a_read_only_data_dir(tmp_path, adapter_cli):
    _, invoke = adapter_cli
    data = tmp_path / "ro"
    data.mkdir()
    data.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = invoke(data, "activate", "voice")
    finally:
        data.chmod(0o700)
    assert result.exit_code == 1 and "cannot record the active adapter" in result.stderr
    no_traceback(result)


def test_activate_checks_the_gguf_and_its_recorded_sha256(tmp_path, adapter_cli):
    adapters, invoke = adapter_cli
    data = tmp_path / "data"
    assert invoke(data, "activate", "voice").exit_code == 0
    gguf = adapters / "voice" / "adapter.gguf"
    gguf.write_bytes(gguf.read_bytes()[:-16] + b"\x00" * 16)  # changed after its build
    changed = invoke(data, "activate", "voice", "--force")
    assert changed.exit_code == 1 and "does not match the sha256" in changed.stderr
    manifest = json.loads((adapters / "voice" / "manifest.json").read_text())
    del manifest["adapter_sha256"]
    (adapters / "voice" / "manifest.json").write_text(json.dumps(manifest))
    gguf.write_bytes(b"GGUF but not really")
    broken = invoke(data, "activate", "voice", "--force")
    assert broken.exit_code == 1 and "cannot be used" in broken.stderr
    assert (data / "active_adapter").read_text().strip() == "voice"  # the earlier choice stands
    no_traceback(broken)
