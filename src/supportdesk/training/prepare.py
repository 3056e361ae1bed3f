"""Transcripts → a validated, PII-scrubbed, deduplicated chat dataset with a fixed split.

Inputs (by file): JSONL chat (``{"messages": [{"role", "content"}]}``, which is also what
``supportdesk history export`` writes), CSV with ``customer`` / ``agent`` columns (rows of
one conversation share a ``conversation`` id column, if present), and the Twitter customer-care
shape (``{"context": [{"role": "customer"|"agent", "text"}], "agent_reply", "company",
"session"}``). Bad records are reported with file, line and field, and skipped.

PII is replaced by typed placeholders *before* anything is written (``training/pii.py``):
``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[SSN]``, ``[IP]``, ``[MAC]``, ``[HANDLE]``,
``[URL]`` (profiles and links carrying personal ids), ``[ORDER]`` / ``[ACCOUNT]`` (numbers
introduced as such, and a configurable pattern). Duplicates are dropped; the train/eval split is by
conversation, from a hash of its content, so it is the same on every run.

Personal sign-offs at the end of an agent reply ("Happy browsing! — Priya, Acme Care", "^AB",
"/AB", "-Luis") are replaced by the brand's house sign-off (or removed when it has none) and
counted: an adapter trained on them signs its replies as a person.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supportdesk.private import private_dir, private_tree
from supportdesk.training.pii import DEFAULT_ORDER_PATTERN, Scrubber

ROLE_ALIASES = {"user": "user", "customer": "user", "human": "user", "assistant": "assistant", "agent": "assistant",
                "ai": "assistant", "system": "system"}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


@dataclass
class Conversation:
    messages: list[dict[str, str]]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.messages, sort_keys=True).encode()).hexdigest()


# -- readers -------------------------------------------------------------------------------------


def _messages(raw: Any, file: str, line: int, problems: list[Problem]) -> list[dict[str, str]] | None:
    if not isinstance(raw, list) or not raw:
        problems.append(Problem(file, line, "messages", "must be a non-empty list"))
        return None
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(Problem(file, line, f"messages[{i}]", "must be an object with role and content"))
            return None
        role = ROLE_ALIASES.get(str(item.get("role", "")).lower())
        content = item.get("content", item.get("text"))
        if role is None:
            problems.append(Problem(file, line, f"messages[{i}].role", f"unknown role {item.get('role')!r}"))
            return None
        if not isinstance(content, str) or not content.strip():
            problems.append(Problem(file, line, f"messages[{i}].content", "missing or empty text"))
            return None
        out.append({"role": role, "content": content.strip()})
    if not any(m["role"] == "assistant" for m in out):
        problems.append(Problem(file, line, "messages", "no agent (assistant) turn to learn from"))
        return None
    return out


def _from_history(record: dict[str, Any]) -> bool:
    meta = record.get("metadata")
    return isinstance(meta, dict) and meta.get("source") == "supportdesk-history"


def _rated_good(message: dict[str, Any]) -> bool:
    """A reply from the history: learned only when rated 👍 (``--rated-good`` exports carry no rating:
    every reply in them was)."""
    feedback = message.get("feedback", 1)
    return isinstance(feedback, int) and not isinstance(feedback, bool) and feedback > 0


NO_COMPANY = "(no company)"


class MixedBrands(ValueError):
    """The Twitter-shape input holds several brands and none was chosen: one voice per adapter."""

    def __init__(self, brands: Counter[str]) -> None:
        self.brands = brands
        super().__init__(
            f"the input holds {len(brands)} brands (the Twitter shape's 'company'): {brand_list(brands)}. "
            "An adapter learns one voice: pass --company NAME to keep one brand, or --all-companies to mix them"
        )


def brand_list(brands: dict[str, int]) -> str:
    """'RockstarSupport (170), MojangSupport (108), …', most records first."""
    return ", ".join(f"{name} ({n})" for name, n in Counter(brands).most_common())


def read_jsonl(path: Path, problems: list[Problem], company: str | None = None,
               brands: Counter[str] | None = None) -> Iterator[Conversation]:
    """``brands`` counts the Twitter-shape records per company, before ``company`` filters them."""
    name = str(path)
    with path.open(encoding="utf-8-sig", errors="strict") as handle:
        try:
            lines = list(handle)
        except UnicodeDecodeError as exc:
            problems.append(Problem(name, 0, "file", f"not UTF-8: {exc}"))
            return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            problems.append(Problem(name, number, "json", f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(name, number, "record", "must be a JSON object"))
            continue
        if "messages" in record:
            raw = record["messages"]
            if _from_history(record) and isinstance(raw, list):
                # A whole conversation from 'history export': a reply nobody rated 👍 is not learned
                # (nor kept as context); the customer's turns stay.
                raw = [m for m in raw if not (isinstance(m, dict) and ROLE_ALIASES.get(str(m.get("role", "")).lower())
                                              == "assistant" and not _rated_good(m))]
            messages = _messages(raw, name, number, problems)
            meta = {k: v for k, v in record.items() if k != "messages"}
        elif "context" in record and "agent_reply" in record:  # the Twitter customer-care shape
            if brands is not None:
                brands[str(record.get("company") or NO_COMPANY)] += 1
            if company and record.get("company") != company:
                continue
            context = record["context"]
            if not isinstance(context, list):
                problems.append(Problem(name, number, "context", "must be a list of turns"))
                continue
            raw = [{"role": t.get("role"), "content": t.get("text")} for t in context if isinstance(t, dict)]
            raw.append({"role": "agent", "content": record.get("agent_reply")})
            messages = _messages(raw, name, number, problems)
            meta = {"company": record.get("company"), "session": record.get("session")}
        else:
            problems.append(Problem(name, number, "messages", "missing (expected 'messages', or 'context' + 'agent_reply')"))
            continue
        if messages:
            yield Conversation(messages, f"{name}:{number}", meta)


def read_csv(path: Path, problems: list[Problem]) -> Iterator[Conversation]:
    """Spreadsheet exports included: a UTF-8 byte-order mark is dropped; other encodings are named."""
    import io

    name = str(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(name, line, "file", f"not UTF-8 (byte 0x{raw[exc.start]:02x}); "
                                                    "export the sheet as 'CSV UTF-8' and try again"))
        return
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            fieldnames = reader.fieldnames or []
        except csv.Error as exc:
            problems.append(Problem(name, 1, "header", f"not a readable CSV header ({exc})"))
            return
        columns = {c.strip().lstrip("\ufeff").lower(): c for c in fieldnames}
        if "customer" not in columns or "agent" not in columns:
            problems.append(Problem(name, 1, "header", f"needs 'customer' and 'agent' columns, found {list(columns)}"))
            return
        group_col = columns.get("conversation") or columns.get("conversation_id")
        current: list[dict[str, str]] = []
        current_id: str | None = None
        start_line = 2
        rows = iter(reader)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except csv.Error as exc:
                problems.append(Problem(name, reader.line_num, "row", f"not readable CSV ({exc}); the rest of the file is skipped"))
                break
            number = reader.line_num
            cid = row.get(group_col, "") if group_col else str(number)
            if current and cid != current_id:
                yield Conversation(current, f"{name}:{start_line}")
                current = []
            if not current:
                start_line = number
            current_id = cid
            customer = (row.get(columns["customer"]) or "").strip()
            agent = (row.get(columns["agent"]) or "").strip()
            if not customer:
                problems.append(Problem(name, number, "customer", "empty"))
                continue
            if not agent:
                problems.append(Problem(name, number, "agent", "empty"))
                continue
            current += [{"role": "user", "content": customer}, {"role": "assistant", "content": agent}]
        if current:
            yield Conversation(current, f"{name}:{start_line}")


# -- the whole step ----------------------------------------------------------------------------


@dataclass
class PreparedDataset:
    train: list[Conversation]
    eval: list[Conversation]
    problems: list[Problem]
    duplicates: int
    pii: dict[str, int]
    read: int
    brands: dict[str, int] = field(default_factory=dict)
    """Twitter-shape records per company in the input (before ``company`` kept one)."""
    kept_brands: dict[str, int] = field(default_factory=dict)
    """Of those, the ones in the dataset (the brand --company kept, or every brand mixed)."""
    sign_offs: int = 0
    """Personal sign-offs replaced by the house one (or removed)."""

    def stats(self) -> dict[str, Any]:
        all_convs = self.train + self.eval
        turns = [sum(m["role"] == "assistant" for m in c.messages) for c in all_convs]
        return {
            "read": self.read, "bad_records": len(self.problems), "duplicates": self.duplicates,
            "train": len(self.train), "eval": len(self.eval), "agent_turns": sum(turns),
            "pii_replaced": dict(self.pii), "brands": dict(self.kept_brands), "sign_offs_replaced": self.sign_offs,
        }


def replace_sign_off(reply: str, sign_off: str, brand_words: frozenset[str] = frozenset()) -> tuple[str, bool]:
    """An agent reply with its personal sign-off at the end ("— Priya, Acme Care", "^AB", "/AB",
    "-Luis") replaced by the house ``sign_off`` (removed when it is empty); (text, replaced?)."""
    from supportdesk.answers.voice_check import personal_sign_off

    text = reply.rstrip()
    found = personal_sign_off(text, brand_words)
    if found is None:
        return reply, False
    text = text[: found.start()].rstrip()
    if sign_off:
        # The house line may already lead the personal part ("Happy browsing! — Maya"): not twice.
        lead = re.split(r"\s*[—–-]{1,2}\s*", sign_off, maxsplit=1)[0].strip()
        if lead and text.endswith(lead):
            text = text[: -len(lead)].rstrip()
        if text and text[-1].isalnum():
            text += "."
        text = f"{text} {sign_off}".strip()
    return text, True


def split_of(conversation: Conversation, eval_fraction: float) -> str:
    bucket = int(conversation.key[:8], 16) / 0xFFFFFFFF
    return "eval" if bucket < eval_fraction else "train"


def prepare(
    paths: list[Path], *, eval_fraction: float = 0.15, order_pattern: str | None = DEFAULT_ORDER_PATTERN,
    company: str | None = None, all_companies: bool = False, keep_numbers: tuple[str, ...] = (),
    sign_off: str | None = None, brand_words: frozenset[str] = frozenset(),
) -> PreparedDataset:
    """Raises ``MixedBrands`` when Twitter-shape records of several companies come in and neither
    ``company`` (keep one) nor ``all_companies`` (mix them on purpose) says what to do.
    ``keep_numbers``: the company's own phone numbers (not personal data). ``sign_off``: the house
    sign-off personal ones are replaced by (None: left as they are; '': removed)."""
    problems: list[Problem] = []
    brands: Counter[str] = Counter()
    scrub = Scrubber(order_pattern or DEFAULT_ORDER_PATTERN, keep_numbers=keep_numbers)
    sign_offs = 0
    seen: set[str] = set()
    train: list[Conversation] = []
    evals: list[Conversation] = []
    duplicates = read = 0
    for path in paths:
        if not path.is_file():
            problems.append(Problem(str(path), 0, "file", "not found"))
            continue
        if path.suffix.lower() == ".csv":
            records = read_csv(path, problems)
        elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            records = read_jsonl(path, problems, company, brands)
        else:
            problems.append(Problem(str(path), 0, "file", f"unsupported type '{path.suffix}' (use .jsonl or .csv)"))
            continue
        for conversation in records:
            read += 1
            conversation.messages = [{"role": m["role"], "content": scrub(m["content"])} for m in conversation.messages]
            if sign_off is not None:
                for message in conversation.messages:
                    if message["role"] == "assistant":
                        message["content"], replaced = replace_sign_off(message["content"], sign_off, brand_words)
                        sign_offs += replaced
            if conversation.key in seen:
                duplicates += 1
                continue
            seen.add(conversation.key)
            (evals if split_of(conversation, eval_fraction) == "eval" else train).append(conversation)
    if company is None and not all_companies and len(brands) > 1:
        raise MixedBrands(brands)
    kept = {company: brands[company]} if company and brands.get(company) else {} if company else dict(brands)
    return PreparedDataset(train, evals, problems, duplicates, dict(scrub.counts), read, dict(brands), kept, sign_offs)


def write_dataset(dataset: PreparedDataset, out_dir: Path) -> dict[str, Any]:
    private_dir(out_dir)
    for name, items in (("train", dataset.train), ("eval", dataset.eval)):
        (out_dir / f"{name}.jsonl").write_text(
            "".join(json.dumps({"messages": c.messages, "source": c.source}, ensure_ascii=False) + "\n" for c in items)
        )
    stats = dataset.stats()
    stats["problems"] = [str(p) for p in dataset.problems]
    stats["sha256"] = {n: hashlib.sha256((out_dir / f"{n}.jsonl").read_bytes()).hexdigest() for n in ("train", "eval")}
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=1))
    private_tree(out_dir)
    return stats


def load_split(path: Path) -> list[list[dict[str, str]]]:
    return [json.loads(line)["messages"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
