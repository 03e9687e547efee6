"""Caption hygiene: clean a candidate caption, reject unusable ones, merge per-frame captions, pick one.

Every captioner (original text, BLIP-2, MiniGPT-4, the class label) writes its raw candidate into
`meta["captions"]`; `select_caption` cleans each in priority order and returns the first that survives,
with the reason every other one was rejected, so the json explains the choice.

Given captions (`original`, the user's text, and `label`, from the user's class name) are the user's data:
only whitespace and control characters are cleaned (one line, single spaces), case and punctuation are
kept. Lower-casing the first letter / dropping a final period are opt-in (`CaptionStyle`). Model captions
(BLIP-2, MiniGPT-4) are generated text and get the full treatment:
- whitespace collapsed, wrapping quotes and trailing punctuation dropped, first letter lower-cased;
- boilerplate openings removed, repeatedly ("an image of a picture of a dog" -> "a dog");
- rejected when degenerate: fewer than `MIN_WORDS` words or `MIN_CHARS` letters, no letters at all, a token
  repeated `MAX_RUN` times in a row ("a a a a"), or a long caption with few distinct words (loops).
Every candidate: null (None, NaN, pd.NA) or empty is `empty_caption`; longer than `max_chars` (default
`MAX_CAPTION_CHARS`) is `caption_too_long`. A rejection reason always starts with its rule name
(`RULES`) followed by ": " and the details, so reports group by rule (`vidrd_data.reasons.reason_rule`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MIN_WORDS = 3
MIN_CHARS = 8
MAX_RUN = 3  # a token repeated this many times in a row is a generation loop
MIN_DISTINCT_RATIO = 0.5  # distinct/total words, checked for captions of >= 8 words
MAX_CAPTION_CHARS = 1000
GIVEN = ("original", "label")  # candidates that are the user's text: kept as given
RULES = ("empty_caption", "caption_too_long", "caption_too_short", "degenerate", "not_text")

# Openings that describe the medium, not the content. Order matters only for readability: applied to a fixpoint.
_BOILERPLATE = [
    r"(?:in )?(?:this|the|a|an) (?:video|clip|image|picture|photo|photograph|frame|still|screenshot|footage|scene from a video)"
    r"(?: (?:shows|showing|depicts|depicting|features|featuring|contains|is of|of))?",
    r"(?:here|there) (?:is|are)",
    r"(?:this|it) is",
    r"(?:a )?(?:close[- ]?up|stock) (?:video|image|photo|footage) of",
    r"(?:video|image|picture|photo) of",
    r"we (?:can )?see",
    r"you can see",
    r"(?:question|answer|caption|description)\s*:",
]
_BOILERPLATE_RE = re.compile(r"^\s*(?:" + "|".join(_BOILERPLATE) + r")\b[\s,:;-]*", re.IGNORECASE)
_WS = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9']+", re.IGNORECASE)
_QUOTES = "\"'`“”‘’"


@dataclass(frozen=True)
class CaptionStyle:
    """Opt-in normalisation of given captions (recipe: caption_select params); off: kept as given."""
    lowercase_first: bool = False  # "A dog" -> "a dog" (not "NASA ..." : a capital second letter keeps it)
    strip_final_period: bool = False  # "A dog." -> "A dog"


def is_null(value) -> bool:
    """None, float NaN, pd.NA / NaT, numpy NaN: a table cell with no value."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (str, bytes)):
        return False
    try:
        import pandas as pd

        return bool(pd.api.types.is_scalar(value) and pd.isna(value))
    except (ImportError, TypeError, ValueError):
        return False


def clean_text(text: str) -> str:
    """One line: control characters dropped (line breaks and tabs become spaces), whitespace runs collapsed."""
    s = "".join(c for c in str(text) if c.isspace() or unicodedata.category(c) != "Cc").replace("\ufeff", "")
    return _WS.sub(" ", s).strip()


def lowercase_first(s: str) -> str:
    return s[0].lower() + s[1:] if s[:1].isupper() and not s[1:2].isupper() else s


def normalize(text: str) -> str:
    """One line, single spaces, no wrapping quotes, no trailing punctuation run (model captions)."""
    s = clean_text(text).strip(_QUOTES).strip()
    return s.rstrip(" .,;:!-").strip()


_PROMPT_ECHO = re.compile(r"^.*\banswer\s*:", re.IGNORECASE | re.DOTALL)


def strip_boilerplate(text: str) -> str:
    """Remove a echoed "Question: ... Answer:" prompt and medium-describing openings ("the video shows",
    "an image of", ...) until none is left."""
    s = normalize(_PROMPT_ECHO.sub("", str(text)))
    while True:
        new = _BOILERPLATE_RE.sub("", s, count=1).strip()
        if new == s:
            return s
        s = new


def is_degenerate(text: str) -> str | None:
    """Why the model caption `text` (already normalised) is not usable (a rule-prefixed reason), or None."""
    if not text:
        return "empty_caption: nothing left after cleaning"
    words = [w.lower() for w in _WORD.findall(text)]
    if not any(c.isalpha() for c in text):
        return "degenerate: no letters"
    run = 1
    for prev, cur in zip(words, words[1:]):
        run = run + 1 if cur == prev else 1
        if run >= MAX_RUN:
            return f"degenerate: {cur!r} repeated {run} times in a row"
    if len(words) < MIN_WORDS:
        return f"caption_too_short: {len(words)} word(s) < {MIN_WORDS}"
    if sum(c.isalpha() for c in text) < MIN_CHARS:
        return f"caption_too_short: fewer than {MIN_CHARS} letters"
    if len(words) >= 8 and len(set(words)) / len(words) < MIN_DISTINCT_RATIO:
        return f"degenerate: only {len(set(words))} distinct words in {len(words)}"
    return None


def clean_caption(text, given: bool = False, max_chars: int = MAX_CAPTION_CHARS,
                  style: CaptionStyle | None = None) -> tuple[str | None, str | None]:
    """(cleaned caption, None) or (None, rule-prefixed reason). `given`: the user's text (kept as given,
    `style` opt-ins aside); else a model caption (normalised, boilerplate and degenerate output rejected)."""
    if is_null(text):
        return None, "empty_caption: null"
    if not isinstance(text, str):
        return None, f"not_text: a {type(text).__name__}"
    if given:
        s = clean_text(text)
        style = style or CaptionStyle()
        if style.strip_final_period:
            s = s.rstrip(".").rstrip()
        if style.lowercase_first:
            s = lowercase_first(s)
        if not s:
            return None, "empty_caption: nothing but whitespace"
    else:
        s = strip_boilerplate(text)
    if len(s) > max_chars:
        return None, f"caption_too_long: {len(s)} chars > max_caption_chars {max_chars}"
    if given:
        return s, None
    reason = is_degenerate(s)
    return (None, reason) if reason else (lowercase_first(s), None)


def select_caption(candidates: Mapping[str, str | None], priority: Sequence[str], max_chars: int = MAX_CAPTION_CHARS,
                   style: CaptionStyle | None = None) -> tuple[str | None, str | None, dict[str, str]]:
    """The first candidate in `priority` that survives `clean_caption` (given ones: `GIVEN`).

    Returns (caption, its candidate name, {name: rejection reason} for every other candidate in `priority`
    that was absent or rejected). (None, None, reasons) when none survives.
    """
    chosen: tuple[str | None, str | None] = (None, None)
    reasons: dict[str, str] = {}
    for name in priority:
        cleaned, reason = clean_caption(candidates.get(name), name in GIVEN, max_chars, style)
        if cleaned is None:
            reasons[name] = reason or "empty_caption: rejected"
        elif chosen[0] is None:
            chosen = (cleaned, name)
    return chosen[0], chosen[1], reasons


def filter_reason(rejected: Mapping[str, str], priority: Sequence[str]) -> str:
    """The status-row reason when no candidate survived: the rule of the first candidate that had text
    (else of the first), then every candidate's reason: "caption_too_long: original: 1532 chars > ...".
    """
    names = [n for n in priority if n in rejected] or list(rejected)
    if not names:
        return "empty_caption: no candidate captions"
    had_text = [n for n in names if not rejected[n].startswith("empty_caption: null")]
    lead = (had_text or names)[0]
    rule, _, detail = rejected[lead].partition(": ")
    others = "; ".join(f"{n}: {rejected[n]}" for n in names if n != lead)
    return f"{rule}: {lead}: {detail}" + (f"; {others}" if others else "")


# ---- merging the captions of several frames of one clip -------------------------------------------------

MERGE_RULES = ("consensus", "first", "longest")


def merge_captions(captions: Sequence[str | None], rule: str = "consensus") -> tuple[str | None, list[str | None]]:
    """Merge per-frame captions (in frame order) into one; returns (merged or None, per-frame rejection reasons).

    Only captions that survive `clean_caption` take part.
    - "consensus": the caption sharing the most words with the others (mean Jaccard overlap, the medoid):
      one odd frame (a cut, a blur) does not decide the clip's caption. Ties go to the frame nearest the
      middle of the clip.
    - "first": the first surviving caption in frame order.
    - "longest": the surviving caption with the most words (ties: earliest).
    """
    if rule not in MERGE_RULES:
        raise ValueError(f"unknown caption merge rule {rule!r}; allowed: {', '.join(MERGE_RULES)}")
    cleaned = [clean_caption(c) for c in captions]
    reasons = [r for _, r in cleaned]
    alive = [(i, c) for i, (c, _) in enumerate(cleaned) if c is not None]
    if not alive:
        return None, reasons
    if rule == "first" or len(alive) == 1:
        return alive[0][1], reasons
    if rule == "longest":
        return max(alive, key=lambda ic: (len(_WORD.findall(ic[1])), -ic[0]))[1], reasons
    bags = {i: set(w.lower() for w in _WORD.findall(c)) for i, c in alive}
    mid = (len(captions) - 1) / 2

    def score(ic: tuple[int, str]) -> tuple[float, float]:
        i = ic[0]
        others = [j for j, _ in alive if j != i]
        overlap = sum(len(bags[i] & bags[j]) / max(1, len(bags[i] | bags[j])) for j in others) / len(others)
        return overlap, -abs(i - mid)

    return max(alive, key=score)[1], reasons


# ---- captions from class names ---------------------------------------------------------------------------

# Class names whose first word is a subject, not an action: "BabyCrawling" -> "a baby crawling".
_SUBJECTS = {"baby", "child", "kid", "man", "woman", "person", "people", "dog", "cat", "horse", "bird", "girl", "boy"}
# Base-form verbs seen at the start of action-recognition class names (UCF-101, HMDB, Kinetics).
_VERBS = {
    "apply", "bake", "blow", "bounce", "braid", "brush", "catch", "clap", "clean", "climb", "comb", "cook", "cut",
    "dance", "dive", "draw", "dribble", "drink", "drive", "drop", "eat", "fold", "hit", "hug", "juggle", "jump",
    "kick", "kiss", "knit", "lift", "make", "mix", "mop", "paint", "pick", "play", "pour", "pull", "punch", "push",
    "read", "ride", "run", "shake", "shave", "shoot", "shovel", "sing", "sit", "skate", "ski", "slide", "smile",
    "smoke", "spin", "stand", "stir", "swim", "swing", "talk", "throw", "tie", "toss", "use", "walk", "wash",
    "wave", "write",
}
_DOUBLE_FINAL = {"cut", "hit", "jog", "mop", "run", "sit", "spin", "stir", "swim", "drop", "hug", "clap", "shop"}
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _gerund(verb: str) -> str:
    if verb in _DOUBLE_FINAL:
        return verb + verb[-1] + "ing"
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    return verb + "ing"


def label_words(label: str) -> list[str]:
    """Split a class name in any common style: "ApplyEyeMakeup", "apply_eye_makeup", "playing guitar"."""
    words: list[str] = []
    for part in re.split(r"[\s_\-/]+", str(label).strip()):
        words += [w.lower() for w in _CAMEL.findall(part)] if part else []
    return words


def label_to_caption(label: str, templates: Mapping[str, str] | None = None) -> str:
    """A plain sentence from a class name: "ApplyEyeMakeup" -> "a person applying eye makeup",
    "BabyCrawling" -> "a baby crawling", "Archery" -> "a person doing archery". `templates` maps a class
    name to its own caption (or a format string with {label}) where the rule reads badly."""
    if templates and label in templates:
        return templates[label].format(label=" ".join(label_words(label)))
    words = label_words(label)
    if not words:
        raise ValueError(f"cannot make a caption from an empty class name {label!r}")
    first = words[0]
    if len(words) > 1 and words[1] in ("up", "ups"):  # "PullUps", "PushUps": an exercise, not a verb
        return "a person doing " + " ".join(words)
    if first.endswith("ing") and len(first) > 4:
        return "a person " + " ".join(words)
    if first in _VERBS:
        return "a person " + " ".join([_gerund(first)] + words[1:])
    if any(w.endswith("ing") and len(w) > 4 for w in words[1:]):
        return ("a " if first in _SUBJECTS else "a person ") + " ".join(words)
    return "a person doing " + " ".join(words)
