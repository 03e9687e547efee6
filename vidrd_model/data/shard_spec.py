"""Turn what a user passes to `--shards` into the list of shard URLs webdataset opens."""

from __future__ import annotations

import glob
import os
from typing import Iterable

from webdataset.shardlists import expand_urls

_REMOTE_PREFIXES = ("http://", "https://", "s3://", "gs://", "pipe:", "hf://", "ais://")


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
