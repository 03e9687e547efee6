"""Turn what a user passes to `--shards` into the list of shard URLs webdataset opens."""

from __future__ import annotations

import glob
import logging
import os
from typing import Iterable

from webdataset.shardlists import expand_urls

_REMOTE_PREFIXES = ("http://", "https://", "s3://", "gs://", "pipe:", "hf://", "ais://")
_UNCHECKABLE = ("pipe:", "ais://")  # no filesystem to look for a commit marker in

logger = logging.getLogger(__name__)


def expand_shard_spec(spec: str | Iterable[str]) -> list[str]:
    """Expand brace patterns (`a-{000000..000009}.tar`), `::`-joined lists, local globs and directories.

    Accepts one string or a list of strings. Remote URLs are kept as they are (webdataset opens them);
    local paths are made absolute so that every Ray worker on a shared filesystem sees the same list.
    """
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    urls: list[str] = []
    for item in items:
        for url in expand_urls(os.fspath(item)):
            if url.startswith(_REMOTE_PREFIXES):
                urls.append(url)
            elif os.path.isdir(url):
                urls.extend(sorted(glob.glob(os.path.join(url, "**", "*.tar"), recursive=True)))
            elif glob.has_magic(url):
                urls.extend(sorted(glob.glob(url)))
            else:
                urls.append(url)
    local_missing = [u for u in urls if not u.startswith(_REMOTE_PREFIXES) and not os.path.exists(u)]
    if local_missing:
        raise FileNotFoundError(
            f"shard not found: {local_missing[0]} ({len(local_missing)} missing). "
            "Pass tar files written by `vidrd-data build`, e.g. --shards 'out/demo/shards/*.tar'."
        )
    urls = [u if u.startswith(_REMOTE_PREFIXES) else os.path.abspath(u) for u in urls]
    if not urls:
        raise FileNotFoundError(f"no shards match {spec!r}: use a glob, a brace pattern or a directory of .tar files")
    # One order everywhere: the split by node and by worker depends on it.
    return sorted(dict.fromkeys(urls))


def training_shards(spec: str | Iterable[str]) -> list[str]:
    """`expand_shard_spec`, keeping only committed shards (those whose `_stats.json` marker exists, per the
    shard-format contract): a tar a killed or running build left without its marker is skipped, with a note."""
    from vidrd_format.shards import committed_tar_urls

    urls = expand_shard_spec(spec)
    checkable = [u for u in urls if not u.startswith(_UNCHECKABLE)]
    committed = set(committed_tar_urls(checkable))
    kept = [u for u in urls if u in committed or u.startswith(_UNCHECKABLE)]
    skipped = [u for u in checkable if u not in committed]
    for url in skipped:
        logger.warning("skipping %s: not committed (no %s beside it; a build is still writing it or was killed "
                       "before committing it)", url, os.path.basename(url)[: -len(".tar")] + "_stats.json")
    unchecked = [u for u in urls if u.startswith(_UNCHECKABLE)]
    if unchecked:
        logger.warning("%d shard URL(s) (e.g. %s) cannot be checked for a commit marker; read as given",
                       len(unchecked), unchecked[0])
    if not kept:
        raise FileNotFoundError(f"none of the {len(urls)} shards of {spec!r} is committed (no *_stats.json beside "
                                "them): let `vidrd-data build` finish, or rerun it to complete them")
    return kept
