"""The brand profile: who the bot speaks for, in one place.

Company name, the assistant's display name, what it helps with (the scope phrase that
declines name), product names, domain terms and model-code patterns (the router's cues),
the hand-off message and contacts, the house sign-off, and approved replies per social
intent. Read from the ``[brand]`` table of a TOML file that lives with the KB folder
(``KB/.supportdesk-brand.toml``, a dotfile the index never reads; or ``brand.file``) and from
the settings' ``[brand]`` (a value set there wins, key by key). A KB with no profile gets
neutral defaults: "our support assistant", no product names, a generic hand-off sentence.

Nothing here imports Textual, a model runtime or the CLI.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from supportdesk.settings import BRAND_INTENTS, BrandSettings, Settings

BRAND_FILE = ".supportdesk-brand.toml"
"""In the KB folder (a dotfile, so never indexed): the brand profile of the company these docs are about."""

NEUTRAL = "built-in neutral defaults"

# -- neutral defaults: no company named, nothing about any product ---------------------------------
DEFAULT_ASSISTANT = "Support assistant"
DEFAULT_SCOPE = "questions about our products and services, your orders and your account"
DEFAULT_HANDOFF = "I'm passing this to a member of our support team, who will get back to you here."
DEFAULT_HANDOFF_CONTACTS = "I'm passing this to a member of our support team. You can also reach us {contacts}."
DEFAULT_REPLIES: dict[str, tuple[str, ...]] = {
    "greeting": ("Hello! How can I help you today?", "Hi there! What can I help you with?",
                 "Hello, thanks for getting in touch. What can I do for you?"),
    "thanks": ("You're welcome! Is there anything else I can help with?", "Glad I could help!",
               "You're very welcome. Just write here if anything else comes up."),
    "goodbye": ("Goodbye, and thanks for getting in touch!", "Thanks for chatting. Have a good day!",
                "Bye for now! Write here any time you need help."),
    "compliment": ("Thank you, that's kind of you to say!", "Thanks so much, glad it helped!",
                   "That's lovely to hear, thank you!"),
    "identity": (("I'm an automated support assistant, not a person. If you'd rather talk to someone from our "
                 "team, just say so and I'll pass you on."),
                 ("You're chatting with an automated assistant. I can help with {scope}, and I can hand you over "
                 "to a person whenever you like.")),
    "abuse": ("I'm sorry this has been frustrating. I'm here to help when you're ready.",
              "I understand you're annoyed. Tell me what went wrong and I'll do what I can.",
              "Sorry it's been a poor experience. If you'd rather talk to a person, just ask."),
    "injection": ("I can't help with that. I can help with {scope}.",
                  "That's not something I can do. Is there a question about {scope} I can help with?"),
    "decline": ("Sorry, I can only help with {scope}.",
                "I'm afraid that's outside what I can help with: I'm here for {scope}.",
                "That's not something I can answer. I can help with {scope}, though."),
    "other": ("Thanks for your message. How can I help you today?",
              "I'm here to help with {scope}. What would you like to know?"),
}

# Product and domain words any support desk shares (the profile adds its own).
GENERIC_TERMS = ("firmware", "password", "account", "pin", "qr", "voucher", "usb", "led", "light", "wi-fi")
# A model or error code when the profile names none: two to four letters, a hyphen, digits ("AB-120").
GENERIC_CODES = (r"[a-z]{2,4}-\d{2,5}[a-z]?",)


class CueLexicon:
    """The router's product cues: product names, terms and model codes as two regexes."""

    def __init__(self, words: tuple[str, ...], codes: tuple[str, ...]) -> None:
        self.words = words
        self.codes = codes
        alternatives = "|".join(_term_pattern(w) for w in words) or r"(?!x)x"
        self.product = re.compile(rf"\b(?:{alternatives})s?\b", re.IGNORECASE)
        self.code = re.compile(r"\b(?:" + "|".join(codes) + r")\b", re.IGNORECASE) if codes else re.compile(r"(?!x)x")

    @property
    def key(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.words, self.codes


def _term_pattern(term: str) -> str:
    """A term as a regex: literal, except that a hyphen may be left out ('wi-fi', 'wifi')."""
    return re.escape(term.strip().lower()).replace(r"\-", "-?")


GENERIC_LEXICON = CueLexicon(GENERIC_TERMS, GENERIC_CODES)

_PLACEHOLDER = re.compile(r"\{(company|assistant|scope|contacts|sign_off)\}")
_ANY_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")


@dataclass(frozen=True)
class BrandProfile:
    company: str = ""
    assistant_name: str = DEFAULT_ASSISTANT
    scope: str = DEFAULT_SCOPE
    products: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    model_codes: tuple[str, ...] = ()
    handoff_message: str = ""
    contacts: tuple[str, ...] = ()
    sign_off: str = ""
    adapter: str | None = None
    transcripts: Path | None = None
    order_pattern: str | None = None
    replies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = NEUTRAL
    """Where it came from: the profile file, 'settings', both, or the neutral defaults."""
    origins: dict[str, str] = field(default_factory=dict)
    """Per key that is not a default: 'file' or 'settings'."""
    warnings: tuple[str, ...] = ()

    # -- what the rest of the app asks for --------------------------------------------------
    @property
    def is_neutral(self) -> bool:
        return not self.origins

    @property
    def speaker(self) -> str:
        """The label answers are shown under (never a person's name)."""
        return self.assistant_name

    def fill(self, text: str) -> str:
        values = {"company": self.company or "our company", "assistant": self.assistant_name, "scope": self.scope,
                  "contacts": self.contacts_text(), "sign_off": self.sign_off}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

    def contacts_text(self) -> str:
        items = [c.strip() for c in self.contacts if c.strip()]
        if len(items) <= 1:
            return "".join(items)
        return ", ".join(items[:-1]) + " or " + items[-1]

    def handoff_text(self, opening: str = "") -> str:
        """The hand-off message, after an opening that says why ("I'd rather not guess.")."""
        if self.handoff_message:
            body = self.handoff_message
            if "{contacts}" not in body and self.contacts:
                body += " You can also reach us {contacts}."
        else:
            body = DEFAULT_HANDOFF_CONTACTS if self.contacts else DEFAULT_HANDOFF
        text = self.fill(body)
        return f"{opening.strip()} {text}".strip()

    def approved(self, intent: str) -> tuple[str, ...]:
        """The approved replies for an intent, filled in; the neutral ones where the profile has none."""
        replies = self.replies.get(intent) or DEFAULT_REPLIES.get(intent) or DEFAULT_REPLIES["other"]
        return tuple(self.fill(r) for r in replies)

    def reply(self, intent: str, message: str = "") -> str:
        """One approved reply, chosen by the message (the same message gets the same reply; different
        messages get different ones, so the bot does not sound canned)."""
        options = self.approved(intent)
        digest = int(hashlib.sha256(f"{intent}\n{message}".encode()).hexdigest()[:8], 16)
        return options[digest % len(options)]

    @cached_property
    def lexicon(self) -> CueLexicon:
        words = tuple(dict.fromkeys([*GENERIC_TERMS, *self.products, *self.terms]))
        return CueLexicon(words, self.model_codes or GENERIC_CODES)

    @cached_property
    def own_lexicon(self) -> CueLexicon:
        """The brand's own products, terms and codes (no generic support words): a message naming
        one is about this company's products, whatever else it says."""
        return CueLexicon(tuple(dict.fromkeys([*self.products, *self.terms])), self.model_codes or GENERIC_CODES)

    @property
    def generic_words(self) -> tuple[str, ...]:
        """The brand's own name as it shows in answers and sources alike: the assistant's display
        name and the company's first word (no evidence that a sentence restates a source)."""
        return (*self.assistant_name.split(), *self.company.split()[:1])

    @cached_property
    def name_words(self) -> frozenset[str]:
        """Lower-case words of the company, assistant and sign-off: the brand's own, never a person's."""
        text = " ".join([self.company, self.assistant_name, self.sign_off, *self.products])
        return frozenset(w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'+-]*", text))

    def keep_numbers(self) -> tuple[str, ...]:
        """The digits of the phone numbers in the contacts: the company's own, not personal data."""
        found = []
        for contact in self.contacts:
            for number in re.findall(r"\+?\d[\d ().-]{5,}\d", contact):
                digits = re.sub(r"\D", "", number)
                if len(digits) >= 7:
                    found.append(digits)
        return tuple(found)

    # -- reporting -----------------------------------------------------------------------------
    def describe(self) -> str:
        name = self.company or "no company named"
        return f"{name} ({self.assistant_name}) from {self.source}"

    def to_json(self) -> dict[str, Any]:
        return {"company": self.company, "assistant_name": self.assistant_name, "scope": self.scope,
                "products": list(self.products), "contacts": list(self.contacts), "sign_off": self.sign_off,
                "adapter": self.adapter, "source": self.source, "origins": dict(self.origins),
                "replies": {k: len(v) for k, v in self.replies.items()}, "warnings": list(self.warnings)}


# -- loading -------------------------------------------------------------------------------------

def profile_path(settings: Settings) -> Path:
    return Path(settings.brand.file) if settings.brand.file else Path(settings.kb_dir) / BRAND_FILE


def _field_error(path: Path, key: str, exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(p) for p in problem.get("loc", ()) if p != key)
    return f"{path}: [brand] {key}{'.' + where if where else ''}: {problem.get('msg', 'invalid')} — ignored"


def _read_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The file's [brand] values that validate, and one warning per problem (file, key, what)."""
    warnings: list[str] = []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except tomllib.TOMLDecodeError as exc:
        return {}, [f"{path} is not valid TOML ({exc}): the brand profile uses neutral defaults"]
    except (OSError, UnicodeError) as exc:
        return {}, [f"{path} cannot be read ({exc}): the brand profile uses neutral defaults"]
    table = data.get("brand")
    if not isinstance(table, dict):
        return {}, [f"{path}: no [brand] table: the brand profile uses neutral defaults"]
    known = set(BrandSettings.model_fields) - {"file"}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.7)
            warnings.append(f"{path}: [brand] unknown key '{key}' is ignored"
                            + (f"; did you mean '{close[0]}'?" if close else ""))
            continue
        try:
            BrandSettings.model_validate({key: value})
        except ValidationError as exc:
            warnings.append(_field_error(path, key, exc))
            continue
        values[key] = value
    if isinstance(values.get("transcripts"), str):
        values["transcripts"] = (path.parent / values["transcripts"]).resolve()
    return values, warnings


def _check(values: dict[str, Any], where: dict[str, str]) -> list[str]:
    """Values that parse but cannot work: an unknown intent, a bad regex, an unknown placeholder."""
    warnings = []
    for intent, replies in list((values.get("replies") or {}).items()):
        if intent not in BRAND_INTENTS:
            warnings.append(f"{where['replies']}: [brand.replies] unknown intent '{intent}' is ignored "
                            f"(known: {', '.join(BRAND_INTENTS)})")
            values["replies"].pop(intent)
            continue
        kept = [r for r in replies if isinstance(r, str) and r.strip()]
        for reply in kept:
            for name in _ANY_PLACEHOLDER.findall(reply):
                if not _PLACEHOLDER.fullmatch("{" + name + "}"):
                    warnings.append(f"{where['replies']}: [brand.replies] {intent}: unknown placeholder '{{{name}}}' "
                                    "is left as written (known: {company}, {assistant}, {scope}, {contacts})")
        if not kept:
            values["replies"].pop(intent)
    for key in ("model_codes",):
        good = []
        for pattern in values.get(key) or []:
            try:
                re.compile(pattern)
                good.append(pattern)
            except re.error as exc:
                warnings.append(f"{where[key]}: [brand] {key}: '{pattern}' is not a valid regular expression ({exc}) "
                                "— ignored")
        if key in values:
            values[key] = good
    if values.get("order_pattern"):
        try:
            re.compile(values["order_pattern"])
        except re.error as exc:
            warnings.append(f"{where['order_pattern']}: [brand] order_pattern is not a valid regular expression "
                            f"({exc}) — ignored")
            values.pop("order_pattern")
    return warnings


_cache: dict[str, tuple[Any, BrandProfile]] = {}
_cache_lock = threading.Lock()


def load_brand(settings: Settings) -> BrandProfile:
    """The profile in use for these settings: settings' [brand] over the profile file over neutral
    defaults. Cheap to call per message (the file is re-read only when it changes)."""
    path = profile_path(settings)
    try:
        stamp: Any = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    chosen = settings.brand.model_dump(exclude_unset=True, exclude={"file"})
    chosen = {k: v for k, v in chosen.items() if v is not None}
    key = json.dumps([str(path), stamp, chosen], sort_keys=True, default=str)
    with _cache_lock:
        hit = _cache.get(str(path))
        if hit is not None and hit[0] == key:
            return hit[1]
    file_values, warnings = _read_file(path) if stamp is not None else ({}, [])
    if settings.brand.file and stamp is None:
        warnings.append(f"brand.file {path} does not exist: the brand profile uses neutral defaults")
    origins = {k: "file" for k in file_values} | {k: "settings" for k in chosen}
    values = {**file_values, **chosen}
    if "replies" in values:
        values["replies"] = {k: list(v) for k, v in values["replies"].items()}
    where = {k: (str(path) if origins.get(k) == "file" else "settings") for k in BrandSettings.model_fields}
    warnings += _check(values, where)
    sources = []
    if "file" in origins.values():
        sources.append(str(path))
    if "settings" in origins.values():
        sources.append("settings [brand]")
    profile = BrandProfile(
        company=(values.get("company") or "").strip(),
        assistant_name=(values.get("assistant_name") or "").strip() or DEFAULT_ASSISTANT,
        scope=(values.get("scope") or "").strip() or DEFAULT_SCOPE,
        products=tuple(values.get("products") or ()),
        terms=tuple(values.get("terms") or ()),
        model_codes=tuple(values.get("model_codes") or ()),
        handoff_message=(values.get("handoff_message") or "").strip(),
        contacts=tuple(values.get("contacts") or ()),
        sign_off=(values.get("sign_off") or "").strip(),
        adapter=values.get("adapter") or None,
        transcripts=Path(values["transcripts"]) if values.get("transcripts") else None,
        order_pattern=values.get("order_pattern") or None,
        replies={k: tuple(r for r in v if isinstance(r, str) and r.strip()) for k, v in (values.get("replies") or {}).items()},
        source=" + ".join(sources) if sources else NEUTRAL,
        origins=origins,
        warnings=tuple(warnings),
    )
    with _cache_lock:
        _cache[str(path)] = (key, profile)
    return profile
