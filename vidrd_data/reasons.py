"""The rule of a status row's reason: what reports group by, never the numbers or names in it.

Stages write filter reasons as `rule: details` ("caption_too_long: 1532 chars > max_caption_chars 1000",
"too_short: video is 0.80 s, shorter than one 1.00 s clip") or `rule=value` ("duplicate_of=KEY"); the
runtime writes failures as `ExceptionName: message`; readers may name the place first ("list.txt line 2:
outside_root: ..."). `reason_rule` returns the rule name, or the exception name for a failure; a free-text
reason (a reader's "no caption file x.txt beside x.jpg") is grouped by its leading words, cut at the first
word with a digit, path or quote, so per-item details never split a group.
"""

from __future__ import annotations

import re

_RULE = re.compile(r"[a-z][a-z0-9_]*")  # snake_case rule names: too_short, empty_caption, ...
_EXCEPTION = re.compile(r"[A-Z][A-Za-z0-9_]*(?:Error|Exception|Warning|Exit|Interrupt)?")
_WHERE_RULE = re.compile(r"^[^:]*: ([a-z][a-z0-9_]*)[:=] ?")
_ITEM_WORD = re.compile(r"[\d./\\'\"()\[\]]")  # a word with a digit, path or quote names the item: stop there


def reason_rule(reason: str | None) -> str:
    """`rule` from "rule: details"; the exception name from "ValueError: ..."; else the reason's leading
    words up to the first that names the item (digits, paths, quotes), at most 6."""
    if not reason:
        return "?"
    head = re.split(r"[:=]", str(reason), maxsplit=1)[0].strip()  # "rule: details" or "rule=value ..."
    if _RULE.fullmatch(head) or _EXCEPTION.fullmatch(head):
        return head
    inner = _WHERE_RULE.search(str(reason))  # "where: rule: details" (a reader names the file and line first)
    if inner:
        return inner.group(1)
    words = []
    for w in head.split()[:6]:
        if _ITEM_WORD.search(w):
            break
        words.append(w)
    return " ".join(words) or "?"
