"""Adapter pipeline: every input format, validation errors, PII, atomic builds, activation, GGUF/PEFT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SHARED
from typer.testing import CliRunner

from supportdesk.cli import app
from supportdesk.models.adapters import AdapterInfo
from supportdesk.training import build as build_mod
from supportdesk.training.build import select_trainer
from supportdesk.training.evaluate import ActivationRefused, check_activation, voice_markers
from supportdesk.training.pii import Scrubber, _valid_card
from supportdesk.training.prepare import load_split, prepare, write_dataset

DATA = Path(__file__).resolve().parents[1] / "data"
TWITTER = SHARED / "datasets" / "twitter_support" / "agent_reply_pairs.jsonl"


def test_sample_transcripts_are_enough_and_on_voice():
    dataset = prepare([ROOT / "transcripts" / "kestrel_care.jsonl"])
    stats = dataset.stats()
    assert stats["train"] + stats["eval"] >= 300 and stats["bad_records"] == 0
    replies = [m["content"] for c in dataset.train for m in c.messages if m["role"] == "assistant"]
    markers = voice_markers(replies, "Happy surfing! — Kestrel Care")
    assert markers["sign_off_rate"] > 0.8
    assert markers["personal_sign_off_rate"] == 0  # the bot that learns this voice is not a person


def test_jsonl_chat_and_history_export_formats(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]}) + "\n"
        + json.dumps({"messages": [{"role": "customer", "content": "x"}, {"role": "agent", "content": "y"}],
                      "metadata": {"source": "supportdesk-history"}}) + "\n"
    )
    dataset = prepare([path], eval_fraction=0.05)
    assert dataset.read == 2 and not dataset.problems
    roles = {m["role"] for c in dataset.train + dataset.eval for m in c.messages}
    assert roles == {"user", "assistant"}


def test_csv_groups_turns_and_reports_bad_rows():
    dataset = prepare([DATA / "transcripts.csv"], eval_fraction=0.05)
    problems = [str(p) for p in dataset.problems]
    assert any(p.endswith("transcripts.csv:5: customer: empty") for p in problems)
    assert any(p.endswith("transcripts.csv:6: agent: empty") for p in problems)
    conversations = dataset.train + dataset.eval
    assert len(conversations) == 2 and len(conversations[0].messages) == 4  # c1 has two exchanges
    assert "[PHONE]" in conversations[1].messages[0]["content"]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("not json", "json"),
        ('{"messages": []}', "messages"),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "messages[0].role"),
        ('{"messages": [{"role": "user", "content": ""}]}', "messages[0].content"),
        ('{"messages": [{"role": "user", "content": "only a question"}]}', "messages"),
        ('{"foo": 1}', "messages"),
        ('{"context": "nope", "agent_reply": "x"}', "context"),
    ],
)
def test_validation_errors_name_file_line_and_field(tmp_path, line, field):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    path.write_text(good + "\n" + line + "\n")
    dataset = prepare([path])
    assert dataset.read == 1  # the good record survives the bad one
    [problem] = dataset.problems
    assert problem.file.endswith("bad.jsonl") and problem.line == 2 and problem.field == field


def test_unsupported_and_missing_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    dataset = prepare([tmp_path / "notes.txt", tmp_path / "missing.jsonl"])
    assert [p.message for p in dataset.problems] == ["unsupported type '.txt' (use .jsonl or .csv)", "not found"]


def test_pii_scrubbing_on_real_twitter_examples():
    if not TWITTER.exists():
        pytest.skip(f"shared dataset not found: {TWITTER}")
    dataset = prepare([TWITTER], company="TeamYouTube")
    text = "\n".join(m["content"] for c in dataset.train + dataset.eval for m in c.messages)
    assert "zekidemir089@gmail.com" not in text and "[EMAIL]" in text
    assert "UCW97Zu1780HRMZoMMhlW06g" not in text and "[URL]" in text
    assert "@CinVakas" not in text and "[HANDLE]" in text
    assert dataset.stats()["pii_replaced"]["HANDLE"] > 50


def test_scrubber_types_and_keeps_what_is_not_pii():
    scrub = Scrubber(order_pattern=r"\bORD\d{5}\b", keep_numbers=("18885378735",))  # the company's own
    text = scrub("card 4111 1111 1111 1111, not a card 1234 5678 9012 3456, order ORD12345, "
                 "call 1-888-537-8735 or (415) 555-0132, https://example.com/help and https://x.com/user?id=991234")
    assert text.count("[CARD]") == 1 and "[ORDER]" in text  # the non-Luhn number is not called a card
    assert "1-888-537-8735" in text and "[PHONE]" in text
    assert "https://example.com/help" in text and text.count("[URL]") == 1
    assert _valid_card("4111111111111111") and not _valid_card("1234567890123456")


def test_dedupe_and_deterministic_split(tmp_path):
    first = prepare([ROOT / "transcripts" / "kestrel_care.jsonl"])
    second = prepare([ROOT / "transcripts" / "kestrel_care.jsonl"])
    assert first.duplicates == 0 and first.read >= 300
    assert [c.key for c in first.eval] == [c.key for c in second.eval]
    stats = write_dataset(first, tmp_path / "ds")
    assert (tmp_path / "ds" / "train.jsonl").exists() and stats["sha256"]["train"]


def test_trainer_selection():
    assert select_trainer(cuda_available=True, unsloth_importable=True) == "unsloth"
    assert select_trainer(cuda_available=True, unsloth_importable=False) == "peft-cpu"
    assert select_trainer(cuda_available=False, unsloth_importable=True) == "peft-cpu"
    assert select_trainer() == "peft-cpu"  # this machine: no CUDA


def test_build_is_atomic_on_failure(tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    write_dataset(prepare([ROOT / "transcripts" / "kestrel_care.jsonl"]), ds)
    adapters = tmp_path / "adapters"
    (adapters / "voice").mkdir(parents=True)
    (adapters / "voice" / "adapter.gguf").write_bytes(b"previous adapter")

    def crash(*args, **kwargs):
        (args[3] / "adapter_model.safetensors").write_bytes(b"half written")
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod, "train_peft_cpu", crash)
    with pytest.raises(KeyboardInterrupt):
        build_mod.build_adapter("voice", ds, adapters, Path("/nonexistent.gguf"), replace=True)
    assert (adapters / "voice" / "adapter.gguf").read_bytes() == b"previous adapter"
    assert sorted(p.name for p in adapters.iterdir()) == ["voice"]
    with pytest.raises(FileExistsError, match="exists"):
        build_mod.build_adapter("voice", ds, adapters, Path("/nonexistent.gguf"))
    with pytest.raises(FileNotFoundError, match="adapter prepare"):
        build_mod.build_adapter("other", tmp_path / "nope", adapters, Path("/nonexistent.gguf"))


def _adapter(name: str, metrics: dict, eval_sha: str = "e1") -> AdapterInfo:
    return AdapterInfo(name, Path("/tmp") / name, {"metrics": metrics, "eval_sha256": eval_sha})


def test_activation_refuses_worse_adapters():
    good = _adapter("good", {"base_perplexity": 10.0, "adapter_perplexity": 4.0})
    better = _adapter("better", {"base_perplexity": 10.0, "adapter_perplexity": 3.5})
    worse_than_base = _adapter("bad", {"base_perplexity": 10.0, "adapter_perplexity": 11.0})
    with pytest.raises(ActivationRefused, match="worse than the base"):
        check_activation(worse_than_base, None)
    with pytest.raises(ActivationRefused, match="worse than the active adapter 'better'"):
        check_activation(good, better)
    check_activation(better, good)
    check_activation(good, _adapter("other-set", {"adapter_perplexity": 1.0}, eval_sha="e2"))  # not comparable
    with pytest.raises(ActivationRefused, match="not been evaluated"):
        check_activation(_adapter("new", {}), None)


def test_activate_cli_refuses_and_forces(tmp_path):
    adapters = tmp_path / "adapters"
    folder = adapters / "bad"
    folder.mkdir(parents=True)
    # A well-formed LoRA for SmolLM2 (activation checks the GGUF even with --force), worse than the base.
    from supportdesk.training.gguf_lora import write_gguf_lora

    lora = {f"model.layers.{i}.self_attn.q_proj": (np.zeros((4, 576), np.float32), np.zeros((576, 4), np.float32))
            for i in range(30)}
    write_gguf_lora(folder / "adapter.gguf", lora, alpha=8, n_layers=30, n_head=9, n_head_kv=3)
    (folder / "manifest.json").write_text(json.dumps({"metrics": {"base_perplexity": 5.0, "adapter_perplexity": 6.0}}))
    runner = CliRunner()
    env = {"SUPPORTDESK_ADAPTERS_DIR": str(adapters)}
    base = ["--data-dir", str(tmp_path / "d")]
    refused = runner.invoke(app, [*base, "adapter", "activate", "bad"], env=env)
    assert refused.exit_code == 1 and "worse than the base" in refused.stderr
    forced = runner.invoke(app, [*base, "adapter", "activate", "bad", "--force"], env=env)
    assert forced.exit_code == 0 and (tmp_path / "d" / "active_adapter").read_text().strip() == "bad"


def test_prepare_cli(tmp_path):
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "d"), "adapter", "prepare",
                                      str(DATA / "transcripts.csv"), "--out", str(tmp_path / "ds")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "transcripts.csv:5: customer: empty" in result.stderr
    assert (tmp_path / "ds" / "stats.json").exists()
    bad = CliRunner().invoke(app, ["adapter", "prepare", str(DATA / "transcripts.csv"), "--order-pattern", "("])
    assert bad.exit_code == 1 and "not a valid regular expression" in bad.stderr


def _twitter_record(company: str, question: str, reply: str) -> str:
    return json.dumps({"company": company, "session": question[:8], "context": [{"role": "customer", "text": question}],
                       "agent_reply": reply})


def test_prepare_refuses_to_mix_brands_unless_told(tmp_path):
    """Issue 30 item 18: without --company a multi-brand file was mixed into one voice in silence."""
    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join([
        _twitter_record("AcmeCare", "my kettle will not boil", "Sorry to hear that! Try the reset button. ^AC"),
        _twitter_record("AcmeCare", "where is my parcel", "Let's check that for you in a DM. ^AC"),
        _twitter_record("BoltHelp", "app crashes on start", "Yo! Reinstall it and shout if it still breaks."),
    ]) + "\n", encoding="utf-8")
    runner = CliRunner()

    def prepare_cli(*args: str):
        return runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "adapter", "prepare", str(source),
                                   "--out", str(tmp_path / "ds"), *args], env={"COLUMNS": "200"})

    mixed = prepare_cli()
    assert mixed.exit_code == 1, mixed.output
    lines = [line for line in mixed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds 2 brands" in lines[0] and "AcmeCare (2), BoltHelp (1)" in lines[0]
    assert "--company NAME" in lines[0] and "--all-companies" in lines[0]
    assert not (tmp_path / "ds").exists()
    unknown = prepare_cli("--company", "Nobody")
    assert unknown.exit_code == 1 and "--company Nobody: no record of that brand" in unknown.stderr
    assert "AcmeCare (2), BoltHelp (1)" in unknown.stderr
    one = prepare_cli("--company", "AcmeCare")
    assert one.exit_code == 0, one.output
    assert json.loads((tmp_path / "ds" / "stats.json").read_text())["brands"] == {"AcmeCare": 2}
    replies = [m["content"] for split in ("train", "eval") for conv in load_split(tmp_path / "ds" / f"{split}.jsonl")
               for m in conv if m["role"] == "assistant"]
    # Personal initials go (issue 27); another brand than the profile's gets no house sign-off in their place.
    assert sorted(replies) == ["Let's check that for you in a DM.", "Sorry to hear that! Try the reset button."]
    assert "personal sign-offs replaced │ 2 (removed: no house sign-off)" in one.stdout
    every = prepare_cli("--all-companies")
    assert every.exit_code == 0 and "brands mixed" in every.stdout and "BoltHelp (1)" in every.stdout
    assert json.loads((tmp_path / "ds" / "stats.json").read_text())["brands"] == {"AcmeCare": 2, "BoltHelp": 1}
    both = prepare_cli("--company", "AcmeCare", "--all-companies")
    assert both.exit_code == 1 and "not both" in both.stderr
    page = runner.invoke(app, ["adapter", "prepare", "--help"], env={"COLUMNS": "200"}).output
    assert "--all-companies" in page and "several brands" in page


def test_prepare_of_one_brand_needs_no_company(tmp_path):
    source = tmp_path / "pairs.jsonl"
    source.write_text(_twitter_record("AcmeCare", "my kettle will not boil", "Try the reset button. ^AC") + "\n")
    dataset = prepare([source], eval_fraction=0.05)
    assert dataset.brands == {"AcmeCare": 1} and len(dataset.train + dataset.eval) == 1


def test_real_twitter_file_names_its_brands():
    if not TWITTER.exists():
        pytest.skip(f"shared dataset not found: {TWITTER}")
    from supportdesk.training.prepare import MixedBrands

    with pytest.raises(MixedBrands) as caught:
        prepare([TWITTER])
    assert len(caught.value.brands) > 5 and "TeamYouTube" in str(caught.value)


@pytest.mark.slow
def test_gguf_adapter_matches_peft_greedy(tmp_path):
    """A PEFT LoRA (random, so its effect is strong) and its GGUF export give the same greedy
    tokens; the base itself is Q4_1 in llama.cpp and fp32 in transformers, so we compare the
    prefix up to the point where the *base* models themselves agree."""
    import torch
    from peft import LoraConfig, get_peft_model

    from supportdesk.models.embedded import default_gguf_path
    from supportdesk.training.build import export_gguf, load_base_cpu
    from supportdesk.training.evaluate import gguf_matches_peft

    gguf = default_gguf_path()
    base, _ = load_base_cpu(gguf)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data *= 0.3
    out = tmp_path / "random"
    model.save_pretrained(str(out))
    export_gguf(out, model.config, 16)
    prompts = ["How do I return a router?", "What does the amber light mean?", "Is the Talon sold in the UK?",
               "How much is Guardian?", "My Perch light is purple"]
    pairs = gguf_matches_peft(out, gguf, prompts, tokens=20, system_prompt="You are Kestrel Care.")
    with_adapter = [p for p in pairs if p[0] == p[1]]
    prefix = [next((i for i, (a, b) in enumerate(zip(hf, ll)) if a != b), min(len(hf), len(ll))) for hf, ll in pairs]
    assert all(n >= 8 for n in prefix), prefix  # a wrong q/k permutation diverges at the first token
    assert len(with_adapter) >= 2, prefix


def test_push_writes_modelfile_and_reports_a_down_server(tmp_path):
    import socket

    adapters = tmp_path / "adapters"
    folder = adapters / "voice"
    folder.mkdir(parents=True)
    (folder / "adapter.gguf").write_bytes(b"x")
    (folder / "manifest.json").write_text(json.dumps({"system_prompt": 'You are "Kestrel Care".'}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "d"), "adapter", "push", "voice"],
                                env={"SUPPORTDESK_ADAPTERS_DIR": str(adapters),
                                     "SUPPORTDESK_MODEL__OLLAMA_HOST": f"http://127.0.0.1:{port}", "COLUMNS": "200"})
    assert result.exit_code == 1 and "not answering" in result.stderr and "ollama create supportdesk-voice -f" in result.stderr
    modelfile = (folder / "Modelfile").read_text()
    assert modelfile.startswith("FROM ") and f"ADAPTER {folder / 'adapter.gguf'}" in modelfile
    assert 'SYSTEM """You are "Kestrel Care"."""' in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile


class _WordTokenizer:
    """Just enough of a chat tokenizer for the training loop: one id per word, ChatML-ish turns."""

    pad_token_id = 0

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False, return_dict=False):
        ids = []
        for m in messages:
            ids += [1 + (m["role"] == "assistant")] + [3 + sum(map(ord, w)) % 90 for w in m["content"].split()] + [2]
        return ids + ([1] if add_generation_prompt else [])


def _tiny_lora_model(seed: int = 0):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128))
    return get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False, task_type="CAUSAL_LM"))


def test_label_positions_only_loss_equals_the_library_loss():
    import torch

    from supportdesk.training.build import lm_loss

    model = _tiny_lora_model()
    ids = torch.randint(3, 96, (3, 20))
    labels = torch.full_like(ids, -100)
    labels[:, 12:] = ids[:, 12:]  # the agent's turn
    mask = torch.ones_like(ids)
    mask[2, 16:] = 0
    labels[2, 16:] = -100
    expected = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(lm_loss(model, ids, mask, labels), expected, atol=1e-5)


def test_the_loss_in_slices_and_a_row_at_a_time_gives_the_whole_batch_gradients(monkeypatch):
    """The memory savings change no arithmetic: the head's loss in slices of LOSS_CHUNK positions
    (recomputed in the backward pass) and the batch run a row at a time, each row cut to its own
    length, give the whole batch's mean loss and gradients."""
    from contextlib import nullcontext

    import torch

    from supportdesk.training import build

    model = _tiny_lora_model()
    ids = torch.randint(3, 96, (4, 24))
    labels = torch.full_like(ids, -100)
    labels[:, 10:] = ids[:, 10:]
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    labels[1, 15:] = -100
    mask[3, 20:] = 0
    labels[3, 20:] = -100
    params = [p for p in model.parameters() if p.requires_grad]

    expected = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    expected.backward()
    want = [p.grad.clone() for p in params]
    model.zero_grad(set_to_none=True)

    monkeypatch.setattr(build, "LOSS_CHUNK", 5)  # 7-13 label positions a row: several slices
    for micro in (1, 3, 4):
        loss = build.accumulate_step(model, ids, mask, labels, micro, nullcontext())
        assert abs(loss - float(expected.detach())) < 1e-5
        for got, ref in zip((p.grad for p in params), want, strict=True):
            assert torch.allclose(got, ref, atol=1e-5)
        model.zero_grad(set_to_none=True)


def test_paused_training_resumes_to_the_same_weights(tmp_path):
    """Quitting pauses a build; the next one resumes from the checkpoint and ends exactly where an
    uninterrupted run ends (same batches, same optimizer moments)."""
    import torch

    from supportdesk.training.build import TrainConfig, train_loop
    from supportdesk.training.checkpoint import BuildPaused, Checkpointer

    conversations = [[{"role": "user", "content": f"question {i} about the router"},
                      {"role": "assistant", "content": f"Happy to help! Step {i}: restart the Aerie."}] for i in range(10)]
    config = TrainConfig(rank=4, alpha=8, dropout=0.0, batch_size=2, epochs=1.2, system_prompt="Kestrel Care")

    straight = _tiny_lora_model()
    train_loop(straight, _WordTokenizer(), conversations, config, lambda s: None)

    steps: list[int] = []
    paused = _tiny_lora_model()
    checkpoint = Checkpointer(tmp_path / "ckpt", "fingerprint-1", every=100)
    with pytest.raises(BuildPaused, match="paused at step 3/6"):
        train_loop(paused, _WordTokenizer(), conversations, config, lambda s: steps.append(s.step), checkpoint=checkpoint,
                   should_stop=lambda: len(steps) >= 3)
    assert (tmp_path / "ckpt" / "checkpoint.safetensors").is_file()
    resumed = _tiny_lora_model()  # a new process: fresh weights, restored from the checkpoint
    steps.clear()
    done, _ = train_loop(resumed, _WordTokenizer(), conversations, config, lambda s: steps.append(s.step),
                         checkpoint=checkpoint)
    assert done == 6 and steps[0] == 3 and steps[-1] == 6
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters(), strict=True):
        if a.requires_grad:
            assert torch.allclose(a, b, atol=1e-6), name
    other = Checkpointer(tmp_path / "ckpt", "another-dataset")
    assert other.restore([(n, p) for n, p in _tiny_lora_model().named_parameters() if p.requires_grad], None) is None
