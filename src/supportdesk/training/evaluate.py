"""Is the new adapter better than the base (and than the active adapter)? Measure, then decide.

* perplexity of the real agent replies of the held-out split, base vs. adapter (one model
  load: PEFT's ``disable_adapter()`` gives the base);
* voice markers over generated replies (llama.cpp, the way agents will see them): greeting
  rate, sign-off rate, banned phrases;
* a few side-by-side generations;
* ``gguf_matches_peft``: the GGUF adapter in llama.cpp gives the same greedy tokens as the
  PEFT adapter in transformers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supportdesk.models.adapters import MANIFEST_NAME, AdapterInfo
from supportdesk.training.build import load_base_cpu, tokenize_with_labels, with_system

if TYPE_CHECKING:
    from supportdesk.settings import Settings

GREETING = re.compile(r"^\s*(hi|hello|hey)\b.{0,40}(thanks|thank you) for (reaching out|contacting|getting in touch)", re.IGNORECASE)
_TRAILING_SIGNATURE = re.compile(r"\s[—–-]{1,2}\s*\S.{0,40}$")
BANNED = re.compile(r"\b(as an? [\w-]+(?: [\w-]+)? ai|i am an ai|language model|smollm|hugging ?face|i cannot help)\b", re.IGNORECASE)


@dataclass
class AdapterEvaluation:
    base_perplexity: float
    adapter_perplexity: float
    eval_conversations: int
    markers: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: list[dict[str, str]] = field(default_factory=list)

    @property
    def improvement(self) -> float:
        return 1 - self.adapter_perplexity / self.base_perplexity

    def as_metrics(self) -> dict[str, Any]:
        return {"base_perplexity": round(self.base_perplexity, 3), "adapter_perplexity": round(self.adapter_perplexity, 3),
                "perplexity_drop": round(self.improvement, 4), "eval_conversations": self.eval_conversations,
                "voice_markers": self.markers}


def perplexities(adapter_dir: Path, gguf_path: Path, conversations: list[list[dict[str, str]]], system_prompt: str,
                 max_length: int = 384) -> tuple[float, float]:
    """(base, adapter) perplexity over assistant tokens of ``conversations``."""
    import torch
    from peft import PeftModel

    base, tokenizer = load_base_cpu(gguf_path)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    model.eval()
    totals = {"base": [0.0, 0], "adapter": [0.0, 0]}
    with torch.inference_mode():
        for conversation in conversations:
            ids, labels = tokenize_with_labels(tokenizer, with_system(conversation, system_prompt), max_length)
            n = sum(1 for label in labels[1:] if label != -100)
            if n == 0:
                continue
            input_ids = torch.tensor([ids])
            label_ids = torch.tensor([labels])
            out = model(input_ids=input_ids, labels=label_ids)
            totals["adapter"][0] += float(out.loss) * n
            totals["adapter"][1] += n
            with model.disable_adapter():
                out = model(input_ids=input_ids, labels=label_ids)
            totals["base"][0] += float(out.loss) * n
            totals["base"][1] += n
    return (math.exp(totals["base"][0] / max(totals["base"][1], 1)),
            math.exp(totals["adapter"][0] / max(totals["adapter"][1], 1)))


def sign_off_pattern(sign_off: str = "") -> re.Pattern[str]:
    """The house sign-off (its words before the signature dash), or any trailing '— Signature'."""
    lead = re.split(r"\s*[—–-]{1,2}\s*", sign_off.strip(), maxsplit=1)[0].strip() if sign_off else ""
    return re.compile(re.escape(lead), re.IGNORECASE) if lead else _TRAILING_SIGNATURE


def voice_markers(replies: list[str], sign_off: str = "") -> dict[str, float]:
    """Shares of replies with the house greeting, the house sign-off (``sign_off``, the brand
    profile's), a personal sign-off ('— Priya', '^AB': never wanted), and banned phrases."""
    from supportdesk.answers.voice_check import personal_sign_off

    n = max(len(replies), 1)
    signed = sign_off_pattern(sign_off)
    house = frozenset(w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'+-]*", sign_off))  # the brand's own words
    return {"greeting_rate": sum(bool(GREETING.search(r)) for r in replies) / n,
            "sign_off_rate": sum(bool(signed.search(r)) for r in replies) / n,
            "personal_sign_off_rate": sum(personal_sign_off(r, house) is not None for r in replies) / n,
            "banned_rate": sum(bool(BANNED.search(r)) for r in replies) / n}


def generate_replies(adapter: AdapterInfo | None, prompts: list[str], system_prompt: str, max_tokens: int = 64) -> list[str]:
    from supportdesk.models import ChatMessage, GenerationOptions
    from supportdesk.models.embedded import EmbeddedBackend

    backend = EmbeddedBackend(adapter=adapter, context_tokens=2048)
    options = GenerationOptions(max_tokens=max_tokens, temperature=0.0)
    return [backend.generate([ChatMessage("system", system_prompt), ChatMessage("user", p)], options).run() for p in prompts]


def evaluate_adapter(adapter_dir: Path, gguf_path: Path, eval_file: Path, max_conversations: int = 60,
                     marker_prompts: int = 12) -> AdapterEvaluation:
    from supportdesk.training.prepare import load_split

    manifest = json.loads((adapter_dir / MANIFEST_NAME).read_text())
    system_prompt = manifest.get("system_prompt", "")
    conversations = load_split(eval_file)[:max_conversations]
    if not conversations:
        raise ValueError(f"{eval_file} has no conversations")
    base_ppl, adapter_ppl = perplexities(adapter_dir, gguf_path, conversations, system_prompt,
                                         int(manifest.get("hyperparameters", {}).get("max_length", 384)))
    prompts = [c[0]["content"] if c[0]["role"] == "user" else c[1]["content"] for c in conversations[:marker_prompts]]
    base_replies = generate_replies(None, prompts, system_prompt)
    adapter_replies = generate_replies(AdapterInfo(adapter_dir.name, adapter_dir), prompts, system_prompt)
    return AdapterEvaluation(
        base_perplexity=base_ppl, adapter_perplexity=adapter_ppl, eval_conversations=len(conversations),
        markers={"base": voice_markers(base_replies, manifest.get("sign_off", "")),
                 "adapter": voice_markers(adapter_replies, manifest.get("sign_off", ""))},
        samples=[{"prompt": p, "base": b, "adapter": a} for p, b, a in list(zip(prompts, base_replies, adapter_replies))[:3]],
    )


def record_metrics(adapter_dir: Path, evaluation: AdapterEvaluation) -> None:
    path = adapter_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["metrics"] = evaluation.as_metrics()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(path)


class EvalSetMissing(FileNotFoundError):
    """No held-out split where the evaluation looks for it."""


def evaluate_with_settings(settings: Settings, name: str, dataset: Path | None = None,
                           working: Callable[[str], AbstractContextManager[Any]] = lambda what: nullcontext()
                           ) -> AdapterEvaluation:
    """Evaluate adapter ``name`` against the app's base model on ``dataset``'s held-out split (default:
    the dataset it was built on), and record the metrics in its manifest. ``working`` wraps the
    evaluation itself (the CLI's spinner)."""
    from supportdesk.models import find_adapter
    from supportdesk.models.embedded import default_gguf_path

    adapter = find_adapter(settings.adapters_dir, name)  # ModelMissing: says which adapters exist
    eval_file = (dataset or Path(adapter.manifest.get("dataset", ""))) / "eval.jsonl"
    if not eval_file.is_file():
        raise EvalSetMissing(f"{eval_file} not found")
    with working(f"evaluating '{name}' on {eval_file}…"):
        evaluation = evaluate_adapter(adapter.path, settings.model.gguf_path or default_gguf_path(), eval_file)
    record_metrics(adapter.path, evaluation)
    return evaluation


class ActivationRefused(RuntimeError):
    """The adapter is worse than the base or than the active adapter."""


def check_activation(candidate: AdapterInfo, active: AdapterInfo | None) -> None:
    """Refuse an unevaluated adapter, one that does not beat the base, or one worse than the active
    adapter on the same evaluation set."""
    metrics = candidate.manifest.get("metrics") or {}
    if "adapter_perplexity" not in metrics:
        raise ActivationRefused(f"'{candidate.name}' has not been evaluated: run 'supportdesk adapter eval {candidate.name}'")
    if metrics["adapter_perplexity"] >= metrics["base_perplexity"]:
        raise ActivationRefused(
            f"'{candidate.name}' is worse than the base model (perplexity {metrics['adapter_perplexity']:.2f} "
            f"vs {metrics['base_perplexity']:.2f})"
        )
    if active is not None and active.name != candidate.name:
        current = active.manifest.get("metrics") or {}
        same_eval = active.manifest.get("eval_sha256") == candidate.manifest.get("eval_sha256")
        if same_eval and "adapter_perplexity" in current and metrics["adapter_perplexity"] > current["adapter_perplexity"]:
            raise ActivationRefused(
                f"'{candidate.name}' is worse than the active adapter '{active.name}' on the same evaluation set "
                f"(perplexity {metrics['adapter_perplexity']:.2f} vs {current['adapter_perplexity']:.2f})"
            )


def gguf_matches_peft(adapter_dir: Path, gguf_path: Path, prompts: list[str], tokens: int = 20,
                      system_prompt: str = "") -> list[tuple[list[int], list[int]]]:
    """Greedy token ids from transformers+PEFT and from llama.cpp+GGUF adapter, per prompt."""
    import torch
    from peft import PeftModel

    from supportdesk.models.embedded import _load_llama

    base, tokenizer = load_base_cpu(gguf_path)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    llm, _ = _load_llama(gguf_path, adapter_dir / "adapter.gguf", 2048, 2)
    pairs = []
    for prompt in prompts:
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt}]
        ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False)
        with torch.inference_mode():
            out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=tokens, do_sample=False)
        hf_tokens = out[0, len(ids):].tolist()
        llm.reset()
        llama_tokens: list[int] = []
        for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            llama_tokens.append(int(token))
            if len(llama_tokens) >= tokens or token == llm.token_eos():
                break
        pairs.append((hf_tokens[: len(llama_tokens)] if hf_tokens else hf_tokens, llama_tokens))
    return pairs
