"""The answer pipeline: one call returns the answer stream plus a result with every reason.

    answer = pipeline.ask("How long is the warranty?", history)
    for piece in answer:          # streamed text (what the model writes)
        ...
    answer.result                 # route + reason, citations, checks, timings per stage

Stages: follow-up rewrite → embed + search → conversation policy (a person asked for, a
complaint, a data request: hand-off; off-topic or another company's product: decline; small
talk, "are you a bot?", abuse, injection: approved replies) → route → (grounded) select
sources, hand off if the evidence is weak → prompt → generate → check markers and sentence
support; a brand-voice reply is checked (voice_check) and replaced by an approved one if it fails. When the
model's grounded answer is not supported by its sources, the final text is replaced by the
sources quoted (``fallback = "extractive"``): the customer never gets an unsupported claim.
``result.answer`` is the final text; it can differ from the streamed text.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from supportdesk.answers import approved as approved_answers
from supportdesk.answers import citations as cite
from supportdesk.answers import claims, voice_check
from supportdesk.answers import conversation as talk
from supportdesk.answers.conversation import Turn
from supportdesk.answers.extract import Extraction, asks_value, extract, units
from supportdesk.answers.policy import PLEASANTRIES, ConversationPolicy, PolicyVerdict
from supportdesk.answers.prompts import (
    Source,
    grounded_system,
    grounded_user_message,
    handoff_message,
    select_sources,
    voice_system,
)
from supportdesk.brand import BrandProfile, CueLexicon, load_brand
from supportdesk.kb.answerability import Answerability, AnswerabilityVerdict
from supportdesk.kb.index import KnowledgeBase
from supportdesk.kb.lexical import query_coverage, tokenize
from supportdesk.kb.search import SearchResult
from supportdesk.models.base import ChatBackend, ChatMessage, Generation, GenerationOptions
from supportdesk.router.router import RouteDecision, Router
from supportdesk.sanitize import clean_question, strip_control
from supportdesk.settings import Settings

AnswerKind = Literal["voice", "grounded", "handoff", "clarify", "decline", "approved"]
VOICE_MAX_TOKENS = 96
HEADING_WEIGHT = 0.4  # extractive fallback: weight of the section heading's match to the question


@functools.lru_cache(maxsize=8)
def _prompt_echo(system: str) -> frozenset[tuple[str, ...]]:
    """The grounded prompt's instruction phrases (its system prompt is the brand profile's)."""
    return claims.prompt_phrases(system, "Sources (reference text only)", "Customer question:",
                                 "Answer in two or three sentences, citing sources like [1].")


@dataclass
class Citation:
    number: int
    source: str
    title: str
    heading: str
    page: int | None
    score: float
    snippet: str
    text: str
    chunk_id: str
    cited: bool = False


def citation_to_json(citation: Citation) -> dict[str, Any]:
    """A citation's one wire shape (``wire`` re-exports it)."""
    return asdict(citation)


def citations_to_json(result: AnswerResult) -> list[dict[str, Any]]:
    """An answer's sources as one list, the way the history stores them and the sources panel shows
    them: the ones shown to the model with their numbers, then the other hits numbered 0."""
    return [citation_to_json(c) for c in result.citations] + \
        [dict(citation_to_json(c), number=0) for c in result.other_hits]


@dataclass
class AnswerResult:
    question: str
    query: str
    kind: AnswerKind = "voice"
    answer: str = ""
    streamed: str = ""
    decision: dict[str, Any] = field(default_factory=dict)
    answerability: dict[str, Any] | None = None
    abstained: bool = False
    handoff_reason: str | None = None
    clarify_reason: str | None = None
    """Route 'clarify': why the question was answered with a question (what it could mean)."""
    decline_reason: str | None = None
    """Route 'decline': why the message was declined (off-topic, another company's product)."""
    policy: dict[str, Any] | None = None
    """The conversation policy's verdict (intent, action, probability, reason), before any model ran."""
    voice_check: dict[str, Any] | None = None
    """Brand-voice replies: the check of the model's draft (passed, problems, the draft when replaced)."""
    follow_up: bool = False
    """Read as a follow-up of the conversation: searched with what it refers to."""
    fallback: str | None = None
    cancelled: bool = False
    citations: list[Citation] = field(default_factory=list)
    other_hits: list[Citation] = field(default_factory=list)
    markers_total: int = 0
    markers_invalid: int = 0
    markers_added: int = 0
    """Supported sentences the model left unmarked, given their source's [n] by the support check."""
    supported_rate: float | None = None
    injection_removed: list[dict[str, str]] = field(default_factory=list)
    composed: str | None = None
    """Grounded: 'extracted' (the sources' own sentences, no model call), 'model' (written by the
    model, every sentence through the claim check) or 'model+extracted' (the model's sentences
    failed the check and the extracted answer replaced them)."""
    extraction: dict[str, Any] | None = None
    """Grounded, extracted: the question type and how well the chosen unit matched (score, coverage,
    margin over a unit stating another value)."""
    claims_removed: list[dict[str, str]] = field(default_factory=list)
    """Sentences a model wrote that failed the claim check, each with why (sources panel)."""
    unchecked_removed: list[str] = field(default_factory=list)
    """Sentences dropped for stating facts with no source: in a brand-voice reply any number,
    address or link; in a grounded answer a number none of the shown sources states."""
    timings: dict[str, float] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    approved_id: int | None = None
    """Kind 'approved': the approved answer served (no model ran)."""
    approved_citation: str | None = None
    """Kind 'approved': 'approved answer #12 · alice · 2026-12-07'."""
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    """Approved answers close to the question but below the threshold: answer_id, text, score, question."""

    @property
    def route(self) -> str:
        return str(self.decision.get("route", self.kind))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["route"] = self.route
        data["timings"] = {k: round(v, 2) for k, v in self.timings.items()}
        return data


def retrieval_query(message: str, history: list[Turn], lexicon: CueLexicon | None = None) -> str:
    """A follow-up ("and how long does that take?", "Pagination options") is searched together
    with what it refers to (conversation.follow_up_query); self-contained messages alone."""
    return talk.follow_up_query(message, history) if talk.is_follow_up(message, history, lexicon) else message


def extractive_answer(question: str, sources: list[Source], max_sentences: int = 2) -> str:
    """The sources' own sentences that best match the question, quoted with their markers.

    A sentence scores by the question words it holds and, with weight ``HEADING_WEIGHT``, by
    those its section heading holds: FAQ answers ("45 days from delivery...") rarely repeat the
    question, their heading does. Neutral on the E-Manual (token F1 0.347 -> 0.348 on 69
    questions); on the FAQ-style sample KB it finds the answer filed under a question heading.
    """
    wanted = set(tokenize(question))
    scored = []
    for source in sources:
        heading = set(tokenize(source.hit.chunk.heading.split(" > ")[-1]))
        heading_overlap = len(wanted & heading) / (len(wanted) or 1)
        for order, sentence in enumerate(cite.split_sentences(source.text)):
            words = set(tokenize(sentence))
            if len(words) < 3 or sentence.startswith("|"):
                continue
            overlap = len(wanted & words) / (len(wanted) or 1)
            score = (1 - HEADING_WEIGHT) * overlap + HEADING_WEIGHT * heading_overlap
            scored.append((score, -source.number, -order, sentence.rstrip(), source.number))
    scored.sort(reverse=True)
    best = sorted(scored[:max_sentences], key=lambda item: (item[4], -item[2]))  # read in source order
    picked = [(text, n) for _, _, _, text, n in best]
    if not picked and sources:
        picked = [(sources[0].text.split("\n")[0].strip(), 1)]
    body = " ".join(f"{text} [{n}]" for text, n in picked)
    return f"Here's what our documentation says: {body}"


def _citation(number: int, source_hit: Any, text: str | None = None) -> Citation:
    chunk = source_hit.chunk
    body = text if text is not None else chunk.text
    return Citation(
        number=number,
        source=chunk.source,
        title=chunk.title,
        heading=chunk.heading,
        page=chunk.page,
        score=round(float(source_hit.score), 4),
        snippet=" ".join(body.split())[:200],
        text=body,
        chunk_id=chunk.id,
    )


@dataclass
class Plan:
    """Everything decided before the model writes a word: what was searched, the route and why,
    the hand-off or clarifying question, and the sources a grounded prompt will show."""

    query: str
    search: SearchResult
    decision: RouteDecision
    kind: AnswerKind
    follow_up: bool = False
    verdict: AnswerabilityVerdict | None = None
    handoff_reason: str | None = None
    clarify: talk.Ambiguity | None = None
    policy: PolicyVerdict | None = None
    sources: list[Source] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    extraction: Extraction | None = None
    """Grounded, extracted: the answer taken from the sources (made before the reply is chosen: a question
    after a value the sources do not state is handed off)."""


_VALUE_NAMES = {"price": "price", "distance": "distance", "speed": "speed", "duration": "duration", "count": "number", "date": "date", "hours": "opening hours",
                "phone": "phone number", "email": "email address", "code": "product code", "version": "version"}


class EmptyQuestion(ValueError):
    """A message with no text (blank, whitespace, control characters only): nothing is asked."""


class Answer:
    """A streaming answer: iterate for text; ``result`` is complete when iteration ends."""

    def __init__(self, pipeline: AnswerPipeline, message: str, history: list[Turn], options: GenerationOptions) -> None:
        self._pipeline = pipeline
        self._message = message
        self._history = history
        self._options = options
        self._generation: Generation | None = None
        self._cancelled = False
        self.result = AnswerResult(question=message, query=message)
        self.done = False
        self.on_wait: Any = None
        """Told the questions ahead while waiting for the model (a team server's queue; never here)."""

    def cancel(self) -> None:
        self._cancelled = True
        if self._generation is not None:
            self._generation.cancel()

    def run(self, on_text: Any = None) -> AnswerResult:
        for piece in self:
            if on_text is not None:
                on_text(piece)
        return self.result

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._pipeline._answer(self)
        finally:
            self.done = True


class AnswerPipeline:
    """Routes, retrieves, prompts and checks; the model and the KB are injected."""

    def __init__(self, settings: Settings, kb: KnowledgeBase, backend: ChatBackend | None, router: Router | None = None) -> None:
        self.settings = settings
        self.kb = kb
        self.backend = backend
        cfg = settings.router
        self._own_router = router is None  # an injected router keeps its own weights
        self.router = router or Router(kb.embedder.embed_documents, cfg.weights, cfg.threshold)
        self.approved: Any = None
        """Approved answers (``answers.approved.ApprovedService``), matched before anything else; None: none."""
        self._answerability: tuple[tuple[Any, ...], Answerability] | None = None
        info = getattr(kb.embedder, "info", None)
        self.policy = ConversationPolicy(kb.embedder.embed_documents, brand=self.brand,
                                         base_similarity=self.router.base_similarity, cache_dir=settings.data_dir,
                                         embedder_name=getattr(info, "name", None))

    def warm_up(self) -> None:
        """One-time costs before the first question: the router's and the policy's example vectors."""
        self.router.warm_up()
        if self.approved is not None:  # the approved answers' vectors, before the first question
            self.approved.warm_up()
        if self.settings.policy.enabled:
            self.policy.use_brand(self.brand)
            self.policy.warm_up()

    @property
    def brand(self) -> BrandProfile:
        """The brand profile in use (settings' [brand] over the KB folder's profile file)."""
        return load_brand(self.settings)

    @property
    def answerability(self) -> Answerability:
        """The hand-off model for the serving generation (it can change with a reload)."""
        weights, threshold = self.kb.values().handoff.value
        key = (*weights, threshold)
        if self._answerability is None or self._answerability[0] != key:
            self._answerability = (key, Answerability(weights, threshold))
        return self._answerability[1]

    def ask(self, message: str, history: list[Turn] | None = None, options: GenerationOptions | None = None) -> Answer:
        opts = options or GenerationOptions(
            max_tokens=self.settings.model.max_tokens, temperature=self.settings.model.temperature
        )
        text = clean_question(message)
        if not text:
            raise EmptyQuestion("the question is empty: type a message to ask")
        return Answer(self, text, list(history or []), opts)

    def _history_messages(self, history: list[Turn]) -> list[ChatMessage]:
        """Recent turns, without citation markers (a small model copies them into chit-chat)."""
        keep = self.settings.router.history_turns
        turns = history[-keep:] if keep else []
        return [ChatMessage(t.role, cite.MARKER.sub("", t.content)[:600].strip()) for t in turns]

    def _conversation_grounded(self, history: list[Turn]) -> bool:
        """Was the conversation on the docs? The last answer's route when it is known, else the
        route its question takes now (histories from elsewhere carry no routes)."""
        last = talk.last_answer(history)
        if last is not None and last.route is not None:
            return last.route in ("grounded", "handoff", "clarify")
        previous = talk.previous_question(history)
        if previous is None:
            return False
        search = self.kb.search(previous, k=1)
        return self.router.decide(previous, search.vector, search.best_score).route == "grounded"

    def _assess(self, search: SearchResult, readings: list[dict[str, float]]) -> AnswerabilityVerdict:
        """The hand-off verdict; a follow-up takes the better of its readings (see plan)."""
        top = self.settings.router.context_chunks
        if not readings:
            return self.answerability.assess(search.evidence(top))
        verdicts = []
        for weights in readings:
            search.term_weights = weights
            for hit in search.hits:
                hit.coverage = query_coverage(weights, set(hit.matched))
            verdicts.append(self.answerability.assess(search.evidence(top)))
        best = max(range(len(verdicts)), key=lambda i: verdicts[i].probability)
        search.term_weights = readings[best]
        for hit in search.hits:
            hit.coverage = query_coverage(readings[best], set(hit.matched))
        return verdicts[best]

    def plan(self, message: str, history: list[Turn] | None = None) -> Plan:
        """Search, route, clarify or hand off, pick sources: every decision, no generation."""
        cfg = self.settings.router
        history = list(history or [])
        timings: dict[str, float] = {}
        brand = self.brand
        follow_up = talk.is_follow_up(message, history, brand.lexicon)  # decided once: the query follows from it
        query = talk.follow_up_query(message, history) if follow_up else message  # as retrieval_query
        search = self.kb.search(query, k=max(cfg.context_chunks, self.settings.retrieval.top_k))
        readings: list[dict[str, float]] = []
        if follow_up:
            # Judged on its own words (the previous question's were judged on its turn); with one
            # word of its own, on the better of that and the whole conversation's. Words that only
            # point back ("those", "them", "the other one") count in neither.
            whole = {t: w for t, w in search.term_weights.items() if t not in talk.REFERENCE_TERMS}
            own = set(tokenize(message)) - talk.REFERENCE_TERMS
            mine = {t: w for t, w in whole.items() if t in own}
            # One word of its own ("Are those the only steps?") is too little to judge alone.
            readings = [mine] if len(mine) >= 2 else [w for w in (mine, whole) if w]
        timings["embed_ms"] = search.timings.embed_ms
        timings["search_ms"] = search.timings.search_ms
        vector = search.vector
        if query != message:  # the router judges the message itself
            t = time.perf_counter()
            vector = self.kb.embedder.embed_query(message)
            timings["embed_ms"] += (time.perf_counter() - t) * 1000
        values = self.kb.values()  # resolved once for the serving generation: no file is read here
        if self._own_router:
            self.router.configure(*values.router.value)
        self.router.use_kb_examples(values.router_examples.value)
        self.router.use_lexicon(brand.lexicon)
        decision: RouteDecision = self.router.decide(message, vector, search.best_score)
        if follow_up and decision.route == "voice" and self._conversation_grounded(history):
            decision = replace(decision, route="grounded", note="follow-up of an answer from the docs: stays grounded")
        timings["route_ms"] = decision.elapsed_ms
        plan = Plan(query, search, decision, decision.route, follow_up, timings=timings)
        if self._apply_policy(plan, message, vector, brand):
            return plan
        if decision.route != "grounded":
            return plan
        t = time.perf_counter()
        unclear = talk.ambiguity(message, history, search, self.kb.document_titles())
        if unclear is not None:
            plan.kind, plan.clarify = "clarify", unclear
            return plan
        plan.verdict = self._assess(search, readings)
        if not plan.verdict.answerable or not search.hits:
            plan.kind = "handoff"
            plan.handoff_reason = plan.verdict.reason if search.hits else "the knowledge base returned nothing"
            return plan
        if self.compose_mode() == "extract":
            # Quoting costs no prompt tokens: every retrieved chunk can hold the answer.
            plan.sources = select_sources(search.hits, self.settings.answers.extract_chunks, 10**6)
        else:
            plan.sources = select_sources(search.hits, cfg.context_chunks, cfg.context_chars)
        timings["sources_ms"] = (time.perf_counter() - t) * 1000
        return plan

    def _apply_policy(self, plan: Plan, message: str, vector: Any, brand: BrandProfile) -> bool:
        """The conversation policy, before any model runs: True when it decided the answer's kind
        (hand-off, decline, or an approved reply); False leaves the message to the router."""
        if not self.settings.policy.enabled:
            return False
        t = time.perf_counter()
        self.policy.use_brand(brand)
        # A follow-up is judged with what it refers to: a conversation on the docs is not off topic.
        verdict = self.policy.classify(message, vector, plan.search.best_score, plan.decision.route == "grounded")
        plan.policy = verdict
        plan.timings["policy_ms"] = (time.perf_counter() - t) * 1000
        if verdict.action == "route":
            return False
        plan.kind = {"handoff": "handoff", "decline": "decline"}.get(verdict.action, "voice")
        if verdict.action == "handoff":
            plan.handoff_reason = verdict.reason
        return True

    def _fixed_reply(self, plan: Plan, message: str) -> str | None:
        """Text that needs no model: a hand-off, a clarifying question, a decline, an approved reply."""
        brand = self.brand
        if plan.kind == "handoff":
            return handoff_message(brand, plan.policy.intent if plan.policy and plan.policy.action == "handoff"
                                   else "answerability")
        if plan.kind == "clarify":
            assert plan.clarify is not None
            return plan.clarify.question
        if plan.kind == "decline":
            return brand.reply("decline", message)
        verdict = plan.policy
        if verdict is not None and verdict.action == "reply" and (
                verdict.intent not in PLEASANTRIES or self.settings.policy.pleasantries == "approved"):
            return brand.reply(verdict.intent, message)
        return None

    def _answer(self, answer: Answer) -> Iterator[str]:
        result = answer.result
        timings = result.timings
        started = time.perf_counter()
        message = answer._message
        if self.approved is not None and approved_answers.serve(self.approved, result, message, answer._history,
                                                                self.brand.lexicon):
            timings["total_ms"] = (time.perf_counter() - started) * 1000
            yield result.answer
            return
        plan = self.plan(message, answer._history)
        search = plan.search
        result.query = plan.query
        result.follow_up = plan.follow_up
        result.decision = plan.decision.to_json()
        if plan.policy is not None:
            result.policy = plan.policy.to_json()
            if plan.policy.action != "route":  # the policy decided: its reason is the one shown
                result.decision.update(route=plan.kind, reason=plan.policy.reason,
                                       router_reason=plan.decision.reason)
        timings.update({k: v for k, v in plan.timings.items() if k != "sources_ms"})
        if plan.verdict is not None:
            result.answerability = plan.verdict.to_json()

        t = time.perf_counter()
        sources = plan.sources
        if plan.kind == "grounded" and self.compose_mode() == "extract":
            plan.extraction = self._extraction(result, sources, plan.search.term_weights)
            if not plan.extraction.states_value and asks_value(message):
                # "How long …?" and the shown sources state no duration: quoting a neighbour is no answer.
                plan.kind = "handoff"
                plan.handoff_reason = (f"the sources shown state no {_VALUE_NAMES.get(plan.extraction.question_type, 'value')}"
                                       " of what is asked")
            elif plan.extraction.unnamed and asks_value(message):
                # "What does Support+ cost?" and the answer is the plain service's price: another thing's value.
                plan.kind = "handoff"
                plan.handoff_reason = f"the sources shown say nothing of '{plan.extraction.unnamed}'"
            elif plan.extraction.is_title:
                # The best the shown sources hold is a heading line ("Galaxy S10 [1]."): no answer at all.
                plan.kind = "handoff"
                plan.handoff_reason = "the sources shown hold no sentence that answers it, only a title"
        fixed = self._fixed_reply(plan, message)
        if fixed is not None:
            result.kind = plan.kind
            result.other_hits = [_citation(i, h) for i, h in enumerate(search.hits, start=1)]
            if plan.kind == "handoff":
                result.abstained = True
                result.handoff_reason = plan.handoff_reason
            elif plan.kind == "clarify":
                assert plan.clarify is not None
                result.clarify_reason = plan.clarify.reason
            elif plan.kind == "decline":
                result.decline_reason = plan.policy.reason if plan.policy else None
            text = fixed
            result.answer = result.streamed = text
            timings["prompt_ms"] = (time.perf_counter() - t) * 1000 + plan.timings.get("sources_ms", 0.0)
            timings["total_ms"] = (time.perf_counter() - started) * 1000
            yield text
            return
        if plan.kind == "grounded" and self.compose_mode() == "extract":
            result.kind = "grounded"
            yield from self._extracted(answer, plan, started, t)
            return
        if plan.kind == "grounded":
            result.kind = "grounded"
            for source in sources:
                result.injection_removed += [{"source": source.hit.chunk.source, "line": line} for line in source.removed_lines]
            messages = [
                ChatMessage("system", grounded_system(self.brand)),
                *self._history_messages(answer._history),
                ChatMessage("user", grounded_user_message(message, sources)),
            ]
            shown = {s.hit.chunk.id for s in sources}
            result.citations = [_citation(s.number, s.hit, s.text) for s in sources]
            result.other_hits = [_citation(0, h) for h in search.hits if h.chunk.id not in shown]
        else:
            result.kind = "voice"
            messages = [
                ChatMessage("system", voice_system(self.brand)),
                *self._history_messages(answer._history),
                ChatMessage("user", message),
            ]
            result.other_hits = [_citation(0, h) for h in search.hits]
        timings["prompt_ms"] = (time.perf_counter() - t) * 1000 + plan.timings.get("sources_ms", 0.0)

        options = answer._options
        if result.kind == "grounded":
            options = GenerationOptions(**{**options.__dict__, "temperature": 0.0, "citation_limit": len(sources)})
        else:  # small talk stays short: one paragraph
            options = GenerationOptions(
                **{**options.__dict__, "max_tokens": min(options.max_tokens, VOICE_MAX_TOKENS), "stop": ("\n\n",)}
            )
        if self.backend is None:
            raise RuntimeError("this pipeline was built to plan answers only: it has no model backend")
        generation = self.backend.generate(messages, options)
        answer._generation = generation
        if answer._cancelled:
            generation.cancel()
        try:
            for piece in generation:
                clean = strip_control(piece)
                result.streamed += clean
                yield clean
        finally:
            stats = generation.stats
            result.model = stats.as_dict()
            result.cancelled = stats.finish_reason == "cancelled"
            if stats.ttft_ms is not None:
                timings["ttft_ms"] = stats.ttft_ms
                if "queue_ms" in stats.backend_figures:  # a team server's queue: how long it waited for the model
                    timings["queue_ms"] = float(stats.backend_figures["queue_ms"])
            timings["generation_ms"] = stats.total_ms
            if stats.tokens_per_s:
                timings["tokens_per_s"] = stats.tokens_per_s
            timings["tokens"] = float(stats.tokens)
            with cite.brand_words(self.brand.generic_words, self.brand.assistant_name):
                self._finish(result, sources, search.term_weights)
            timings["total_ms"] = (time.perf_counter() - started) * 1000

    def compose_mode(self) -> str:
        """'extract' or 'model' for grounded answers (setting answers.compose; 'auto' extracts
        with the embedded small model, lets a model behind a server write)."""
        mode = self.settings.answers.compose
        if mode != "auto":
            return mode
        return "extract" if self.backend is None or self.backend.name == "embedded" else "model"

    def _extraction(self, result: AnswerResult, sources: list[Source], weights: dict[str, float]) -> Extraction:
        question = result.query if result.follow_up else result.question
        return extract(question, [(s.number, s.text, s.hit.chunk.heading, s.hit.score,
                                   (s.hit.chunk.source, s.hit.chunk.position)) for s in sources], weights,
                       self.settings.answers.max_words, self.kb.aliases())

    def _extracted(self, answer: Answer, plan: Plan, started: float, t: float) -> Iterator[str]:
        """A grounded answer made of the sources' own sentences, rows or steps: no model call."""
        result, timings = answer.result, answer.result.timings
        sources = plan.sources
        for source in sources:
            result.injection_removed += [{"source": source.hit.chunk.source, "line": line} for line in source.removed_lines]
        shown = {s.hit.chunk.id for s in sources}
        result.citations = [_citation(s.number, s.hit, s.text) for s in sources]
        result.other_hits = [_citation(0, h) for h in plan.search.hits if h.chunk.id not in shown]
        extraction = plan.extraction or self._extraction(result, sources, plan.search.term_weights)
        timings["prompt_ms"] = (time.perf_counter() - t) * 1000 + plan.timings.get("sources_ms", 0.0)
        result.composed = "extracted"
        result.extraction = {"type": extraction.question_type, "score": extraction.score,
                             "coverage": extraction.coverage, "margin": extraction.margin}
        result.answer = result.streamed = extraction.text
        cited = {u.source for u in extraction.units}
        for citation in result.citations:
            citation.cited = citation.number in cited
        with cite.brand_words(self.brand.generic_words, self.brand.assistant_name):
            report = cite.check(extraction.text, {s.number: s.text for s in sources}, self.settings.router.support_min)
        result.markers_total = report.markers_total
        result.supported_rate = report.supported_rate
        timings["ttft_ms"] = (time.perf_counter() - started) * 1000
        yield extraction.text
        timings["generation_ms"] = 0.0
        timings["total_ms"] = (time.perf_counter() - started) * 1000

    def _finish(self, result: AnswerResult, sources: list[Source], weights: dict[str, float]) -> None:
        cfg = self.settings.router
        text = result.streamed.strip()
        if result.kind != "grounded":
            self._check_voice(result, text)
            return
        shown = {s.number: s.text for s in sources}
        report = cite.check(text, shown, cfg.support_min)
        result.markers_total = report.markers_total
        result.markers_invalid = report.markers_invalid
        pool = [u for s in sources for u in units(s.number, s.text, s.hit.chunk.heading, result.question)]
        claim_report = claims.check(report.text, pool, _prompt_echo(grounded_system(self.brand)), cfg.support_min)
        result.claims_removed = claim_report.removed
        result.unchecked_removed = [c["sentence"] for c in claim_report.removed]
        result.composed = "model"
        if claim_report.kept_factual == 0 and not (result.cancelled and claim_report.text):
            # Nothing the model wrote restates a source: the extracted answer is the answer.
            result.fallback = "extractive"
            result.composed = "model+extracted"
            result.answer = self._extraction(result, sources, weights).text
        else:
            result.answer = claim_report.text
        if result.answer != report.text:  # the same text is checked once (check is idempotent on its own output)
            report = cite.check(result.answer, shown, cfg.support_min)
        result.supported_rate = report.supported_rate
        result.answer, result.markers_added = cite.add_missing_markers(report)
        cited = set(report.cited_sources)
        for citation in result.citations:
            citation.cited = citation.number in cited

    def _check_voice(self, result: AnswerResult, text: str) -> None:
        """A brand-voice draft is shown only if it passes the voice check; otherwise one of the
        profile's approved replies for the message's intent is, and the result says why."""
        brand = self.brand
        intent = (result.policy or {}).get("intent") or "none"
        check = voice_check.check(text, result.question, brand, intent)
        result.unchecked_removed = check.fact_sentences
        result.voice_check = check.to_json()
        if result.cancelled or check.passed:
            result.answer = check.text
            return
        result.answer = brand.reply(intent if intent in PLEASANTRIES else "other", result.question)
        result.fallback = "approved-reply"
        result.voice_check["draft"] = text
