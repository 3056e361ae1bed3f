"""Train the brand-voice LoRA adapter and write it in both formats, atomically.

Trainer chosen at run time (``select_trainer``): **Unsloth** when CUDA is available and the
``unsloth`` package imports (4-bit base, its fast LoRA kernels), otherwise the same LoRA SFT
through **transformers + PEFT on the CPU**, loading the base from the very GGUF file the
embedded backend serves (transformers dequantizes it). Both write the same artefact:

    adapters/<name>/adapter_model.safetensors, adapter_config.json   (PEFT)
    adapters/<name>/adapter.gguf                                      (llama.cpp / Ollama)
    adapters/<name>/manifest.json                                     (base + sha256, data hash,
                                                                       hyper-parameters, metrics)

Loss is on assistant turns only. The adapter is built in a hidden folder next to its final
place and renamed into place at the end, so Ctrl-C or a crash never leaves half an adapter.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supportdesk.answers.prompts import voice_system
from supportdesk.brand import BrandProfile
from supportdesk.checksum import sha256_file
from supportdesk.models.adapters import GGUF_NAME, MANIFEST_NAME
from supportdesk.sanitize import check_plain_name
from supportdesk.training.checkpoint import BuildPaused, Checkpointer

if TYPE_CHECKING:
    from supportdesk.settings import Settings

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class TrainConfig:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    learning_rate: float = 3e-4
    epochs: float = 2.0
    batch_size: int = 4
    max_length: int = 384
    seed: int = 0
    max_steps: int | None = None
    # The brand-voice prompt the adapter learns under; `adapter build` sets the brand profile's.
    system_prompt: str = field(default_factory=lambda: voice_system(BrandProfile()))
    sign_off: str = ""  # the house sign-off the transcripts end with (the adapter's evaluation looks for it)
    target_modules: tuple[str, ...] = TARGET_MODULES
    threads: int | None = None  # torch intra-op threads; None: every core (a background build uses fewer)
    # Recompute each layer's activations in the backward pass instead of keeping them: the
    # fp32 activations of a 4 x 384 batch through 30 layers were ~3 GB of the trainer's 4.4 GB.
    gradient_checkpointing: bool = True
    # Rows run through the model at a time; their gradients add up to the batch's (the same
    # mean loss over its agent tokens). None: 1 on the CPU, where glibc kept ~1 GiB of freed
    # activation blocks of a 4-row batch resident (peak RSS 2.4 GiB; 1.45 GiB a row at a
    # time, same step time, no padding), the whole batch on a GPU.
    micro_batch_size: int | None = None


@dataclass
class StepInfo:
    step: int
    total: int
    loss: float


@dataclass
class BuildResult:
    name: str
    path: Path
    trainer: str
    steps: int
    final_loss: float
    seconds: float
    manifest: dict[str, Any] = field(default_factory=dict)


def select_trainer(cuda_available: bool | None = None, unsloth_importable: bool | None = None) -> str:
    """'unsloth' with a GPU and the package, else 'peft-cpu'. Arguments override detection (tests)."""
    if cuda_available is None:
        try:
            import torch

            cuda_available = bool(torch.cuda.is_available())
        except ImportError:  # pragma: no cover - torch is a dependency
            cuda_available = False
    if unsloth_importable is None:
        unsloth_importable = importlib.util.find_spec("unsloth") is not None
    return "unsloth" if cuda_available and unsloth_importable else "peft-cpu"


# -- data ----------------------------------------------------------------------------------------


def with_system(messages: list[dict[str, str]], system_prompt: str) -> list[dict[str, str]]:
    """Train in the context the product answers in: the brand-voice system prompt first."""
    if messages and messages[0]["role"] == "system":
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def tokenize_with_labels(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat, and labels that are -100 except on assistant turns."""
    ids: list[int] = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    labels = [-100] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(tokenizer.apply_chat_template(messages[:i], tokenize=True, add_generation_prompt=True, return_dict=False))
        end = len(tokenizer.apply_chat_template(messages[: i + 1], tokenize=True, return_dict=False))
        labels[start:end] = ids[start:end]
    return ids[:max_length], labels[:max_length]


def load_base_cpu(gguf_path: Path) -> tuple[Any, Any]:
    """The GGUF base dequantized by transformers, and its tokenizer (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import functools
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:  # transformers' GGUF de-quantisation uses a bare tqdm bar; ours already shows progress
        import transformers.modeling_gguf_pytorch_utils as gguf_utils

        if not isinstance(gguf_utils.tqdm, functools.partial):
            gguf_utils.tqdm = functools.partial(gguf_utils.tqdm, disable=True)
    except (ImportError, AttributeError):
        pass
    warnings.filterwarnings("ignore", message="Could not find a config file", module="peft")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def batches(examples: list[tuple[list[int], list[int]]], size: int, pad_id: int, rng: random.Random):
    """Batches of similar length (sorted, then cut), in a shuffled order.

    Random batches are padded to their longest member: on the sample transcripts (125-354
    tokens) a third of every step was padding. The order of batches is shuffled by ``rng``
    (one shuffle per call: per epoch), and ties in length are broken by a shuffled index, so
    the stream is reproducible from the seed.
    """
    import torch

    tiebreak = list(range(len(examples)))
    rng.shuffle(tiebreak)
    ranked = sorted(range(len(examples)), key=lambda i: (len(examples[i][0]), tiebreak[i]))
    groups = [ranked[start : start + size] for start in range(0, len(ranked), size)]
    rng.shuffle(groups)
    for group in groups:
        chunk = [examples[i] for i in group]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (ids, labs) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(labs)] = torch.tensor(labs)
            mask[row, : len(ids)] = 1
        yield input_ids, labels, mask


LOSS_CHUNK = 256
"""Label positions projected onto the vocabulary at a time (256 x 49k fp32 logits: 50 MB)."""


def _head_loss_sum(head: Any, hidden: Any, targets: Any) -> Any:
    import torch

    return torch.nn.functional.cross_entropy(head(hidden).float(), targets, reduction="sum")


def lm_loss(model: Any, input_ids: Any, mask: Any, labels: Any) -> Any:
    """The mean causal-LM loss over the label positions (see ``lm_loss_sum``)."""
    total, count = lm_loss_sum(model, input_ids, mask, labels)
    return total / max(count, 1)


def lm_loss_sum(model: Any, input_ids: Any, mask: Any, labels: Any) -> tuple[Any, int]:
    """Causal-LM loss summed over the label positions, and how many there are; a slice at a time.

    The library's ``model(labels=...)`` projects *every* position onto the 49k-token vocabulary
    and keeps those fp32 logits (and their gradients) for the whole batch: ~600 MB for a batch
    of 4 x 384, most of it for prompt tokens whose loss is ignored. Here the decoder runs as
    usual and only the positions with a label (the agent's turns) meet the output head, in
    slices of ``LOSS_CHUNK`` whose logits are recomputed in the backward pass instead of kept:
    the same mean cross-entropy, and the head's memory no longer grows with the batch (the
    longest sample batch, 774 agent tokens, held ~1.2 GiB of logits, softmax and gradients).
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = getattr(base, "model", None), getattr(base, "lm_head", None)
    count = int((labels[:, 1:] != -100).sum())
    if decoder is None or head is None:  # an architecture without the usual split: the library's way
        return model(input_ids=input_ids, attention_mask=mask, labels=labels).loss * count, count
    hidden = decoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    hidden, targets = hidden[:, :-1][keep], targets[keep]
    if count <= LOSS_CHUNK:
        return _head_loss_sum(head, hidden, targets), count
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, count, LOSS_CHUNK):
        piece = slice(start, start + LOSS_CHUNK)
        total = total + checkpoint(_head_loss_sum, head, hidden[piece], targets[piece], use_reentrant=False)
    return total, count


def accumulate_step(model: Any, input_ids: Any, mask: Any, labels: Any, micro: int, autocast: Any) -> float:
    """Forward and backward over the batch ``micro`` rows at a time (each cut to its own length);
    the gradients are those of the batch's mean loss. Returns that loss."""
    count = max(int((labels[:, 1:] != -100).sum()), 1)
    total = 0.0
    for start in range(0, len(input_ids), micro):
        rows = slice(start, start + micro)
        width = int(mask[rows].sum(dim=1).max())
        with autocast:
            part, _ = lm_loss_sum(model, input_ids[rows, :width], mask[rows, :width], labels[rows, :width])
        (part / count).backward()
        total += float(part.detach())
    return total / count


def train_loop(model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], config: TrainConfig,
               on_step: Callable[[StepInfo], None], device: str = "cpu", checkpoint: Checkpointer | None = None,
               should_stop: Callable[[], bool] = lambda: False) -> tuple[int, float]:
    """Plain PyTorch LoRA SFT loop (TRL's SFTTrainer refuses GGUF-loaded models).

    The batch order is a function of the seed and the epoch alone, so a build resumed from a
    checkpoint at step ``s`` replays the shuffles and continues with batch ``s`` exactly.
    ``should_stop`` is asked after every step: when it says so, a checkpoint is written and
    ``BuildPaused`` raised.
    """
    import warnings

    import torch

    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    examples = [tokenize_with_labels(tokenizer, with_system(c, config.system_prompt), config.max_length) for c in conversations]
    examples = [e for e in examples if any(label != -100 for label in e[1])]
    if not examples:
        raise ValueError("no training examples with an agent turn")
    per_epoch = math.ceil(len(examples) / config.batch_size)
    total = config.max_steps or max(1, int(per_epoch * config.epochs))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    schedule = lambda s: min(1.0, (s + 1) / 5) * max(0.0, 1 - s / total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    step, loss_value = 0, float("nan")
    restored = checkpoint.restore(named, optimizer) if checkpoint is not None else None
    if restored is not None:
        step, loss_value = restored
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
            warnings.simplefilter("ignore")
            scheduler.last_epoch = step - 1
            scheduler.step()
        on_step(StepInfo(step, total, loss_value))
    model.train()
    # bf16 autocast on CPUs with native bf16 (AVX512-BF16): measured 3x faster steps here; the
    # LoRA weights and optimizer state stay fp32. Elsewhere fp32: emulated bf16 is slower.
    from contextlib import nullcontext

    from supportdesk.cpu import has_fast_bf16

    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if device == "cpu" and has_fast_bf16() else nullcontext()
    micro = config.micro_batch_size or (1 if device == "cpu" else config.batch_size)
    epoch = 0
    while step < total:
        for index, (input_ids, labels, mask) in enumerate(batches(examples, config.batch_size, tokenizer.pad_token_id, rng)):
            if epoch * per_epoch + index < step:
                continue  # done before the checkpoint: the shuffle is replayed, the work is not
            loss_value = accumulate_step(model, input_ids.to(device), mask.to(device), labels.to(device), micro, autocast)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            on_step(StepInfo(step, total, loss_value))
            if checkpoint is not None and step < total and (step % checkpoint.every == 0 or should_stop()):
                checkpoint.save(named, optimizer, step, loss_value)
            if step < total and should_stop():
                raise BuildPaused(step, total, checkpoint.folder if checkpoint else Path("."))
            if step >= total:
                break
        epoch += 1
    model.eval()
    return step, loss_value


def train_peft_cpu(gguf_path: Path, conversations: list[list[dict[str, str]]], config: TrainConfig, out_dir: Path,
                   on_step: Callable[[StepInfo], None], **resume: Any) -> tuple[int, float, Any]:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.set_num_threads(config.threads or max(1, os.cpu_count() or 1))
    model, tokenizer = load_base_cpu(gguf_path)
    release_memory()  # the GGUF de-quantisation's buffers
    peft_config = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                             target_modules=list(config.target_modules), task_type="CAUSAL_LM")
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model = get_peft_model(model, peft_config)
    steps, loss = train_loop(model, tokenizer, conversations, config, on_step, **resume)
    model.save_pretrained(str(out_dir))
    return steps, loss, model.config


def train_unsloth(gguf_path: Path, conversations: list[list[dict[str, str]]], config: TrainConfig, out_dir: Path,
                  on_step: Callable[[StepInfo], None], **resume: Any) -> tuple[int, float, Any]:  # pragma: no cover - GPU
    """Unsloth's recipe: 4-bit base, its LoRA patching, the same loop and the same outputs.

    Unsloth cannot read GGUF, so the dequantized base is first written as a plain Hugging Face
    folder (safetensors + config + tokenizer) next to the build, then loaded 4-bit from there.
    """
    from safetensors.torch import save_file
    from unsloth import FastLanguageModel

    base, tokenizer = load_base_cpu(gguf_path)
    hf_dir = out_dir.parent / f".{out_dir.name}-hf-base"
    hf_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(hf_dir / "model.safetensors"))
    base.config.save_pretrained(str(hf_dir))
    tokenizer.save_pretrained(str(hf_dir))
    del base
    model, tokenizer = FastLanguageModel.from_pretrained(model_name=str(hf_dir), max_seq_length=config.max_length,
                                                         load_in_4bit=True, dtype=None)
    model = FastLanguageModel.get_peft_model(model, r=config.rank, lora_alpha=config.alpha, lora_dropout=0.0,
                                             target_modules=list(config.target_modules), bias="none",
                                             use_gradient_checkpointing="unsloth", random_state=config.seed)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    steps, loss = train_loop(model, tokenizer, conversations, config, on_step, device="cuda", **resume)
    model.save_pretrained(str(out_dir))
    shutil.rmtree(hf_dir, ignore_errors=True)
    return steps, loss, model.config


def export_gguf(peft_dir: Path, base_config: Any, alpha: int) -> Path:
    """PEFT safetensors → ``adapter.gguf`` with the gguf package's writer."""
    from safetensors.numpy import load_file

    from supportdesk.training.gguf_lora import pair_peft_tensors, write_gguf_lora

    pairs = pair_peft_tensors(load_file(str(peft_dir / "adapter_model.safetensors")))
    target = peft_dir / GGUF_NAME
    write_gguf_lora(target, pairs, alpha=alpha, n_layers=int(base_config.num_hidden_layers),
                    n_head=int(base_config.num_attention_heads),
                    n_head_kv=int(getattr(base_config, "num_key_value_heads", base_config.num_attention_heads)),
                    name=peft_dir.name)
    return target


def release_memory() -> None:
    """Give the freed training model back to the OS before the evaluation loads the base again
    (glibc keeps freed arenas: the builder's peak was training + evaluation, 2.5 GiB)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim


def build_adapter(
    name: str, dataset_dir: Path, adapters_dir: Path, gguf_path: Path, config: TrainConfig | None = None,
    on_step: Callable[[StepInfo], None] = lambda s: None, trainer: str | None = None, replace: bool = False,
    checkpoint_dir: Path | None = None, should_stop: Callable[[], bool] = lambda: False,
) -> BuildResult:
    """Train and write ``adapters_dir/name`` atomically; an existing adapter needs ``replace``.

    With ``checkpoint_dir`` the training is resumable: it starts from a checkpoint there made
    for the same base, data and hyper-parameters, writes one every few steps, and raises
    ``BuildPaused`` (checkpoint saved, nothing else written) when ``should_stop`` says so.
    """
    check_plain_name(name, "adapter name")
    config = config or TrainConfig()
    final = adapters_dir / name
    if final.exists() and not replace:
        raise FileExistsError(f"adapter '{name}' exists in {adapters_dir}: choose another name or pass --replace")
    train_file = dataset_dir / "train.jsonl"
    if not train_file.is_file():
        raise FileNotFoundError(f"{train_file} not found: run 'supportdesk adapter prepare' first")
    from supportdesk.training.prepare import load_split

    conversations = load_split(train_file)
    trainer = trainer or select_trainer()
    data_sha = sha256_file(train_file)
    base_sha = sha256_file(gguf_path) if checkpoint_dir is not None else None  # else: once trained
    hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items() if k not in ("threads", "micro_batch_size")}
    resume: dict[str, Any] = {"should_stop": should_stop}
    if checkpoint_dir is not None:
        fingerprint = hashlib.sha256(json.dumps([name, trainer, base_sha, data_sha, hyper], sort_keys=True).encode())
        resume["checkpoint"] = Checkpointer(checkpoint_dir / name, fingerprint.hexdigest())
    started = time.time()
    staging = adapters_dir / f".building-{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        train = train_unsloth if trainer == "unsloth" else train_peft_cpu
        steps, loss, base_config = train(gguf_path, conversations, config, staging, on_step, **resume)
        export_gguf(staging, base_config, config.alpha)
        manifest = {
            "name": name,
            "description": f"brand-voice LoRA r={config.rank} on {gguf_path.name}",
            "base_model": gguf_path.name,
            "base_sha256": base_sha or sha256_file(gguf_path),
            "adapter_sha256": sha256_file(staging / GGUF_NAME),
            "dataset": str(dataset_dir),
            "dataset_sha256": data_sha,
            "eval_sha256": sha256_file(dataset_dir / "eval.jsonl") if (dataset_dir / "eval.jsonl").exists() else None,
            "conversations": len(conversations),
            "trainer": trainer,
            "hyperparameters": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()
                                if k not in ("system_prompt", "sign_off")},
            "system_prompt": config.system_prompt,
            "sign_off": config.sign_off,
            "steps": steps,
            "final_loss": loss,
            "train_seconds": round(time.time() - started, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "metrics": {},
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
        if final.exists():
            old = adapters_dir / f".replaced-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if "checkpoint" in resume:
        resume["checkpoint"].clear()
    release_memory()
    return BuildResult(name, final, trainer, steps, loss, time.time() - started, manifest)


def build_with_settings(
    settings: Settings, name: str, dataset: Path, *, replace: bool = False, max_steps: int | None = None,
    epochs: float | None = None, rank: int | None = None, threads: int | None = None,
    checkpoint_dir: Path | None = None, should_stop: Callable[[], bool] = lambda: False,
    on_step: Callable[[StepInfo], None] = lambda s: None, say: Callable[[str], None] = lambda message: None,
) -> BuildResult:
    """``build_adapter`` on the app's base model, under the brand profile's voice prompt and sign-off
    (both recorded in the manifest): what ``adapter build`` and the first run's bootstrap train."""
    from supportdesk.brand import load_brand
    from supportdesk.models.embedded import default_gguf_path

    gguf = settings.model.gguf_path or default_gguf_path()
    brand = load_brand(settings)
    config = TrainConfig(system_prompt=voice_system(brand), sign_off=brand.sign_off)
    if max_steps:
        config.max_steps = max_steps
    if epochs:
        config.epochs = epochs
    if rank:
        config.rank, config.alpha = rank, rank * 2
    config.threads = threads
    trainer = select_trainer()
    say(f"training '{name}' with {trainer} on {gguf.name}"
        + (" — on the CPU this takes a few minutes" if trainer == "peft-cpu" else ""))
    return build_adapter(name, dataset, settings.adapters_dir, gguf, config, on_step, trainer, replace=replace,
                         checkpoint_dir=checkpoint_dir, should_stop=should_stop)
