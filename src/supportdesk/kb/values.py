"""The values in effect for one index generation, each with where it comes from.

For every value a question uses (the fusion weight, the hand-off model, the router model and
its examples from the KB, the question-heading weight) the precedence is: a setting you set →
the KB's labelled file (``LABELLED_FILE`` in the KB folder, written by ``router calibrate
--write-kb``) → the generation's self-calibration → the built-in default. ``resolve`` decides
them once per generation (and again when a reload, or an inspection such as ``kb stats``, finds
the labelled file changed); the result is kept on the snapshot, so a search or an answer reads
it and never the disk.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supportdesk.kb.calibration import Calibration
from supportdesk.settings import Settings

LABELLED_FILE = ".supportdesk-calibration.toml"
"""In the KB folder (a dotfile, so never indexed): values fitted on hand-labelled questions for these docs."""

Stamp = tuple[int, int] | None
"""(mtime_ns, size) of the labelled file; None when there is none."""


def labelled_stamp(kb_dir: Path) -> Stamp:
    try:
        info = (kb_dir / LABELLED_FILE).stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


@dataclass(frozen=True)
class Labelled:
    """The ``[router]`` table of the KB's labelled file, as read once."""

    stamp: Stamp = None
    table: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None
    """Why the file was ignored (unreadable, not TOML)."""


def read_labelled(kb_dir: Path) -> Labelled:
    """The KB's hand-labelled values (they override self-calibration for these docs); a broken
    file is ignored with a warning."""
    path = kb_dir / LABELLED_FILE
    stamp = labelled_stamp(kb_dir)
    if stamp is None:
        return Labelled()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("router", {})
    except (OSError, UnicodeError, tomllib.TOMLDecodeError) as exc:
        return Labelled(stamp, {}, f"{path} ignored: {exc}")
    return Labelled(stamp, table if isinstance(table, dict) else {})


@dataclass(frozen=True)
class Chosen:
    """One value in effect and where it comes from: 'settings', 'labelled set', 'self-calibrated' or 'default'."""

    value: Any
    source: str


@dataclass(frozen=True)
class ValuesInEffect:
    """What one generation's questions use; never changed once resolved (a change resolves anew)."""

    dense_weight: Chosen
    """The fusion weight (a float)."""
    handoff: Chosen
    """The answerability model: (weights, abstain_below)."""
    router: Chosen
    """The router model: (weights, threshold)."""
    router_examples: Chosen
    """Questions made from this KB that join the router's grounded examples (a tuple of str)."""
    question_weight: Chosen
    """The question-heading weight of a hybrid search (a float; settings only)."""
    labelled: Labelled = field(default_factory=Labelled)
    """The labelled file these values were resolved with."""
    warnings: tuple[str, ...] = ()
    """What was ignored while resolving (a broken labelled file or value), in the order found."""

    def in_use(self, question_vectors: int) -> dict[str, Any]:
        """The ``in_use`` table of ``kb stats`` and ``kb calibrate``."""
        handoff_weights, abstain_below = self.handoff.value
        router_weights, threshold = self.router.value
        return {
            "dense_weight": {"value": self.dense_weight.value, "from": self.dense_weight.source},
            "question_vectors": {"count": question_vectors, "weight": self.question_weight.value},
            "handoff": {"weights": list(handoff_weights), "abstain_below": abstain_below, "from": self.handoff.source},
            "router": {"weights": list(router_weights), "threshold": threshold, "from": self.router.source,
                       "kb_examples": len(self.router_examples.value)},
        }


def resolve(settings: Settings, labelled: Labelled, calibration: Calibration | None) -> ValuesInEffect:
    """Every value in effect for a generation with this ``calibration`` (None: none, or no index)."""
    warnings: list[str] = [labelled.warning] if labelled.warning else []
    table = labelled.table
    retrieval, router = settings.retrieval, settings.router

    def chosen_pair(weights_key: str, threshold_key: str) -> Chosen | None:
        """The settings you set, else the KB's labelled values; a labelled pair that is not 4
        numbers and a probability is ignored with a warning."""
        if {weights_key, threshold_key} & router.model_fields_set:
            return Chosen((tuple(getattr(router, weights_key)), float(getattr(router, threshold_key))), "settings")
        if weights_key not in table or threshold_key not in table:
            return None
        weights, threshold = table[weights_key], table[threshold_key]
        numbers = isinstance(weights, list) and len(weights) == 4 and all(
            isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
        if not numbers or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
            warnings.append(f"{Path(settings.kb_dir) / LABELLED_FILE}: [router] {weights_key} must be 4 numbers and "
                            f"{threshold_key} a number from 0 to 1; ignored")
            return None
        return Chosen((tuple(float(w) for w in weights), float(threshold)), "labelled set")

    # The fusion weight: settings, the labelled set, the calibration's own choice (a FAQ), the default.
    labelled_weight = table.get("dense_weight")
    if retrieval.dense_weight is not None:
        dense_weight = Chosen(retrieval.dense_weight, "settings")
    elif isinstance(labelled_weight, int | float) and 0.0 <= labelled_weight <= 1.0:
        dense_weight = Chosen(float(labelled_weight), "labelled set")
    elif retrieval.apply_calibration and calibration is not None and calibration.weight_chosen:
        dense_weight = Chosen(float(calibration.dense_weight), "self-calibrated")
    else:
        dense_weight = Chosen(retrieval.default_dense_weight, "default")

    # The hand-off model: the self-calibrated one only when asked (apply_calibrated_handoff).
    handoff = chosen_pair("answerability_weights", "abstain_below")
    if handoff is None:
        fitted = calibration if retrieval.apply_calibrated_handoff else None
        if fitted is not None and fitted.calibrated and fitted.answerability_weights is not None \
                and fitted.abstain_below is not None:
            handoff = Chosen((tuple(fitted.answerability_weights), fitted.abstain_below), "self-calibrated")
        else:
            handoff = Chosen((tuple(router.answerability_weights), router.abstain_below), "default")

    router_model = chosen_pair("weights", "threshold") or Chosen((tuple(router.weights), router.threshold), "default")

    # None when the KB's router was fitted on a labelled set (its weights assume the generic examples alone).
    if not router.kb_examples:
        examples = Chosen((), "settings")
    elif "weights" in table:
        examples = Chosen((), "labelled set")
    elif calibration is not None and calibration.calibrated:
        examples = Chosen(tuple(calibration.router_examples), "self-calibrated")
    else:
        examples = Chosen((), "default")

    question_weight = Chosen(retrieval.question_weight,
                             "settings" if "question_weight" in retrieval.model_fields_set else "default")
    return ValuesInEffect(dense_weight, handoff, router_model, examples, question_weight, labelled, tuple(warnings))
