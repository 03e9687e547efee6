"""Fingerprints and the near-duplicate index: robustness, first-occurrence semantics, measured precision/recall."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.curation.cur_helpers import jpeg, scene, sibling, transformed
from vidrd_data.curation.hashes import content_hash, fingerprint, hamming, phash
from vidrd_data.curation.index import DedupIndex


def test_photo_reencoded_smaller_is_a_near_duplicate_and_others_are_not():
    orig = scene(1)
    copy = jpeg(orig.resize((orig.width // 2, orig.height // 2)), 25)  # lower quality + resized
    a, b, other = (fingerprint(np.asarray(x)) for x in (orig, copy, scene(2)))
    assert a["exact"] != b["exact"]  # not the same pixels...
    assert hamming(int(a["phash"][0], 16), int(b["phash"][0], 16)) <= 3  # ...but the same picture
    idx = DedupIndex(5)
    assert idx.claim("orig", a) is None and idx.claim("other", other) is None
    m = idx.claim("copy", b)
    assert m is not None and m.owner == "orig" and m.kind == "near"
    assert m.reason().startswith("duplicate_of=orig (near")


def test_exact_match_first_occurrence_and_idempotent_claims():
    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    fp = fingerprint(frames)
    assert fp["exact"] == content_hash(frames.copy()) and len(fp["phash"]) == 3
    idx = DedupIndex(5)
    assert idx.claim("a", fp) is None
    assert idx.claim("a", fp) is None  # a retried task claiming again is still the owner
    m = idx.claim("b", fp)
    assert (m.owner, m.kind, m.distance) == ("a", "exact", 0)
    assert idx.claim("c", fp).owner == "a"  # duplicates never become owners: always the first


def test_flat_pictures_match_only_exactly():
    flat_a = np.full((40, 40, 3), 10, np.uint8)
    flat_b = np.full((40, 40, 3), 200, np.uint8)
    fa, fb = fingerprint(flat_a), fingerprint(flat_b)
    assert not fa["informative"]
    idx = DedupIndex(5)
    assert idx.claim("a", fa) is None and idx.claim("b", fb) is None  # their pHashes are noise: no match


def test_an_image_never_matches_a_clip_and_max_distance_is_bounded():
    img = np.asarray(scene(3))
    idx = DedupIndex(5)
    idx.claim("img", fingerprint(img))
    assert idx.claim("clip", fingerprint(np.stack([img] * 5))) is None
    with pytest.raises(ValueError, match="max_distance must be 0..7"):
        DedupIndex(9)


def test_lsh_finds_every_pair_within_7_bits():
    rng = np.random.default_rng(1)
    idx = DedupIndex(7)
    base = [int(rng.integers(0, 2**63)) for _ in range(200)]
    for i, h in enumerate(base):
        idx.add(f"k{i}", {"exact": f"e{i}", "phash": [f"{h:016x}"], "informative": True})
    for i, h in enumerate(base):
        flips = rng.choice(64, size=int(rng.integers(0, 8)), replace=False)
        q = h
        for f in flips:
            q ^= 1 << int(f)
        m = idx.lookup({"exact": "x", "phash": [f"{q:016x}"], "informative": True})
        assert m is not None and m.owner == f"k{i}", (i, len(flips))


def dedup_quality(n_originals: int = 300, max_distance: int = 5, seed: int = 0) -> dict[str, float]:
    """Originals (distinct scenes), 2 transformed copies of half of them, a hard negative (a large new
    object) of the other half; claimed in random order. A flag is correct when it names the same original."""
    items = []
    for i in range(n_originals):
        im = scene(i)
        items.append((f"o{i}", i, fingerprint(np.asarray(im))))
        if i < n_originals // 2:
            items += [(f"c{i}_{c}", i, fingerprint(np.asarray(transformed(im, 2 * i + c)))) for c in range(2)]
        else:
            items.append((f"s{i}", -1 - i, fingerprint(np.asarray(sibling(im, i)))))
    random.Random(seed).shuffle(items)
    group = {k: g for k, g, _ in items}
    idx = DedupIndex(max_distance)
    flagged = correct = 0
    for key, g, fp in items:
        m = idx.claim(key, fp)
        if m is not None:
            flagged += 1
            correct += group[m.owner] == g
    expected = 2 * (n_originals // 2)  # every copy after the first of its group
    return {"precision": correct / max(flagged, 1), "recall": correct / expected, "flagged": flagged,
            "items": len(items)}


def test_dedup_precision_recall_on_generated_copies():
    q = dedup_quality()
    print(f"\ndedup on {q['items']} pictures: precision {q['precision']:.3f}, recall {q['recall']:.3f}")
    assert q["precision"] >= 0.95 and q["recall"] >= 0.9, q


def test_phash_is_64_bits_and_stable():
    img = np.asarray(scene(7))
    h = phash(img)
    assert 0 <= h < 2**64 and h == phash(img.copy())
    assert phash(np.asarray(scene(8))) != h


def test_seeding_from_this_output_keeps_owners_and_from_earlier_builds_flags_copies(tmp_path):
    from tests.curation.out_helpers import make_output
    from vidrd_data.stages.curation_dedup_index import IndexHolder, committed_fingerprints

    out = make_output(tmp_path / "out")
    seeded = committed_fingerprints(str(out))
    assert len(seeded) == 12  # success rows only: filtered and failed rows hold no kept content
    fp = dict(seeded[1][1])
    key = seeded[1][0]
    resumed = IndexHolder(5)
    resumed.seed(own=[str(out)], against=[])
    assert resumed.claim_many([(key, fp)]) == [None]  # the same sample of this output: still its own owner
    assert resumed.claim_many([("newkey", {**fp, "phash": []})])[0][:2] == (key, "exact")
    later = IndexHolder(5)
    assert later.seed(own=[], against=[str(out)]) == later.seed(own=[], against=[str(out)])  # once per output
    owner, kind, _, earlier = later.claim_many([(key, fp)])[0]
    assert (owner, kind, earlier) == (key, "exact", True)  # already in the earlier build, even under its key
    assert later.info()["seeded"] == {str(out): 12}


def _clip_fp(seed: int) -> dict:
    return fingerprint(np.random.default_rng(seed).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8))


@pytest.mark.parametrize("close_order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_verdicts_follow_partition_order_whatever_order_writers_close_in(close_order):
    """Partition 2 holds the content first seen in partition 0 and an exact copy of partition 1's: however the
    writers finish, partition 0 owns, 1 and 2 are its copies, and nothing is final before its predecessors."""
    from vidrd_data.stages.curation_dedup_index import IndexHolder

    a, b = _clip_fp(1), _clip_fp(2)
    claims = {0: [("p0_a", a)], 1: [("p1_a", a), ("p1_b", b)], 2: [("p2_b", b), ("p2_a", a)]}
    idx = IndexHolder(5)
    for p in claims:
        idx.expect("src", p)
    got = {}
    for p in close_order:
        idx.close("src", p, claims[p])
        for q in sorted(set(claims) - set(got)):
            v = idx.verdicts("src", q)
            if v is not None:
                assert all(r in got for r in range(q)), f"partition {q} final before an earlier one"
                got[q] = v
    assert got[0] == [None]
    assert got[1] == [("p0_a", "exact", 0, False), None]
    assert got[2] == [("p1_b", "exact", 0, False), ("p0_a", "exact", 0, False)]
    assert idx.probe_many([("p1_b", b), ("new", a)]) == [None, ("p0_a", "exact", 0, False)]  # owners stay owners


def test_a_lost_partition_closed_by_the_driver_lets_later_ones_finish():
    from vidrd_data.stages.curation_dedup_index import IndexHolder

    idx = IndexHolder(5)
    for p in (0, 1):
        idx.expect("src", p)
    idx.close("src", 1, [("k", _clip_fp(3))])
    assert idx.verdicts("src", 1) is None  # waits for partition 0
    idx.close("src", 0, [])  # the driver: partition 0's writer failed on every attempt
    assert idx.verdicts("src", 1) == [None]
    idx.close("src", 1, [("k", _clip_fp(3))])  # a retried writer: the same answer
    assert idx.verdicts("src", 1) == [None]


def test_the_index_actors_module_starts_light(tmp_path):
    """Each build starts its index actor in a fresh worker process and its first shard waits for it: the actor's
    module and a fresh output's seeding import neither the stages package nor pandas (~1 CPU-s each), nor numpy
    and OpenCV (the pHash distance is plain Python: curation/hash_bits.py)."""
    import subprocess
    import sys

    code = ("import sys; from vidrd_data.curation.index_holder import IndexHolder; "
            f"h = IndexHolder(5, [{str(tmp_path / 'fresh')!r}], []); assert h.ready() == {{{str(tmp_path / 'fresh')!r}: 0}}; "
            "print(sorted(m for m in sys.modules if m in ('pandas', 'numpy', 'cv2') or m.startswith('vidrd_data.stages')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_a_fresh_partitions_writer_does_not_import_pandas():
    """The writer reads earlier shards' status with pandas only where a partition has some (a resumed or
    retried build): a fresh output's writer processes skip its ~1 CPU-s import before the first shard."""
    import subprocess
    import sys

    code = ("import sys; from vidrd_data import writer; p = writer._prior(None, '/nonexistent', []); "
            "assert not (p.done or p.failed or p.written_keys or p.stats); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", out
