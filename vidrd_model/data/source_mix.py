"""Source mixing: which source each training sample is drawn from, by weight (the paper's data mixture).

Shards are grouped by the source their name carries (`vidrd_format`: `{source}-{index:06d}.tar`). Weights come
from `--mix name=w,...` (config `data.mix`), else from the `weight` each source has in the manifest that built
the shards (recorded in `OUT/dataset_info.json`); without any weight every shard is drawn alike, as one stream.
Each draw picks a source with probability weight / sum(weights), independently of the others (a small source
is read again, epoch after epoch, as often as its weight asks: sampling with replacement across epochs).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import random
from typing import Iterable

from vidrd_format.shards import SHARD_DIR, TAR_EXT, parse_stem, url_to_fs

logger = logging.getLogger(__name__)

ALL = "*"  # the one group when no weights are in effect


class MixError(ValueError):
    """Weights that do not fit the shards (unknown source, missing weight, bad number)."""


def source_of_url(url: str) -> str | None:
    """The source a shard belongs to, from its name (None when it is not named by `vidrd-data build`)."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if name.endswith(TAR_EXT):
        name = name[: -len(TAR_EXT)]
    parsed = parse_stem(name)
    return parsed[0] if parsed else None


def group_by_source(urls: Iterable[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for url in urls:
        groups.setdefault(source_of_url(url) or "(unnamed)", []).append(url)
    return groups


def parse_mix(text: str | dict | None) -> dict[str, float] | None:
    """`"laion=0.4,ucf101=0.05"` (or a mapping) -> {name: weight}; errors say which item is wrong."""
    if text is None or isinstance(text, dict):
        items = (text or {}).items()
    else:
        items = []
        for part in (p.strip() for p in str(text).split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise MixError(f"--mix item {part!r}: expected name=weight, e.g. --mix laion=0.4,ucf101=0.05")
            items.append((name.strip(), value.strip()))
    out = {}
    for name, value in items:
        try:
            weight = float(value)
        except (TypeError, ValueError):
            raise MixError(f"--mix {name}={value!r}: the weight must be a number >= 0") from None
        if weight < 0 or weight != weight:
            raise MixError(f"--mix {name}={value}: the weight must be a number >= 0 (0 leaves the source out)")
        out[str(name)] = weight
    return out or None


def dataset_info_weights(urls: Iterable[str]) -> tuple[dict[str, float], list[str]]:
    """{source: weight} from the dataset_info.json beside each shard folder, and the files read."""
    weights: dict[str, float] = {}
    origin: dict[str, str] = {}
    folders = sorted({u.rstrip("/").rsplit("/", 1)[0] for u in urls})
    read = []
    for folder in folders:
        root = folder[: -len(SHARD_DIR) - 1] if folder.endswith("/" + SHARD_DIR) else folder
        path = f"{root}/dataset_info.json"
        try:
            fs, p = url_to_fs(path)
            if not fs.exists(p):
                continue
            info = json.loads(fs.cat_file(p))
        except Exception as exc:  # noqa: BLE001 - an unreadable info file only means no recorded weights
            logger.debug("no dataset_info.json read at %s: %s", path, exc)
            continue
        read.append(path)
        sources = ((info.get("resolved") or {}).get("manifest") or {}).get("sources") or []
        for src in sources:
            name, weight = src.get("name"), src.get("weight")
            if name is None or weight is None:
                continue
            if name in weights and weights[name] != float(weight):
                raise MixError(f"source {name!r} has weight {weights[name]} in {origin[name]} but {weight} in {path}; "
                               "pass --mix to choose")
            weights[name], origin[name] = float(weight), path
    return weights, read


def resolve_weights(groups: dict[str, list[str]], mix: dict[str, float] | None,
                    recorded: dict[str, float]) -> dict[str, float] | None:
    """Normalised {source: weight} over the shard groups, or None (no weights anywhere: one stream)."""
    present = sorted(groups)
    if mix:
        unknown = sorted(set(mix) - set(groups))
        if unknown:
            raise MixError(f"--mix names {', '.join(unknown)}, which no shard belongs to; the shards' sources are: "
                           f"{', '.join(present)}")
        chosen, where = mix, "--mix"
    elif any(name in recorded for name in present):
        chosen, where = recorded, "the manifest weights in dataset_info.json"
    else:
        return None
    missing = [name for name in present if name not in chosen]
    if missing:
        raise MixError(f"{where} give(s) no weight to {', '.join(missing)} (shards: "
                       f"{', '.join(os.path.basename(groups[m][0]) for m in missing)}); give every source a weight "
                       "(0 leaves one out), e.g. --mix " + ",".join(f"{n}=1" for n in present))
    total = sum(chosen[n] for n in present)
    if total <= 0:
        raise MixError(f"the weights from {where} sum to 0: at least one source needs a weight > 0")
    return {n: chosen[n] / total for n in present if chosen[n] > 0}


def cumulative(weights: dict[str, float]) -> tuple[list[str], list[float]]:
    names = sorted(weights)
    acc, out = 0.0, []
    for name in names:
        acc += weights[name]
        out.append(acc)
    out[-1] = 1.0  # no draw may fall past the end through rounding
    return names, out


def choose_source(names: list[str], cum: list[float], seed: int, slot: int, draw: int) -> str:
    """The source of draw number `draw` of reader `slot`: a pure function, so a resumed run draws the same."""
    u = random.Random(f"{seed}:mix:{slot}:{draw}").random()
    return names[bisect.bisect_right(cum, u)]
