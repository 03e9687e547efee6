"""Model-stage pools of a build: shared between sources with the same stage settings, loaded ahead only when
they reserve no CPU, stopped after the last source that uses them, and a failed load names its stage."""

from __future__ import annotations

import pytest

from vidrd_data.pool_set import PoolSet, pool_signature
from vidrd_data.runtime import ModelStageFailed, StepPlan
from vidrd_data.stages.base import Resources, StageContext

CTX = StageContext(clip={"fps": 8, "size": [64, 64], "frames": 8})


def _step(params: dict, cpus: float = 0.0, name: str = "motion") -> StepPlan:
    # a cheap stage stands in for a model one: the actor only builds the stage
    return StepPlan(stages=[(name, params)], uses_model=True, resources=Resources(num_cpus=cpus), batch_size=1)


def _alive(actors) -> bool:
    import ray

    try:
        return all(ray.get([a.ready.remote() for a in actors], timeout=60))
    except Exception:  # noqa: BLE001
        return False


def _dead(actors, within_s: float = 20.0) -> bool:
    import time

    deadline = time.time() + within_s  # ray.kill is asynchronous
    while time.time() < deadline:
        if not _alive(actors):
            return True
        time.sleep(0.2)
    return False


def test_sources_share_equal_pools_and_release_them_after_the_last_user(ray_session):
    cpu_step = StepPlan(stages=[("caption_label", {})], uses_model=False, resources=Resources(), batch_size=0)
    shared, other, heavy = _step({}), _step({"width": 32}), _step({"width": 48}, cpus=1.0)
    ps = PoolSet([[cpu_step, shared], [shared, heavy], [other]], CTX)
    try:
        first = ps.pools(0)
        assert list(first) == [1]  # only model steps get actors
        ps.wait(0)
        ps.launch(1, ahead=True)  # the next source, ahead of time: not the actor that reserves a CPU
        assert pool_signature(heavy) not in ps.live
        second = ps.pools(1)
        assert second[0] is first[1]  # the same actors: one model in memory for both sources
        ps.wait(1)
        ps.release(0)  # source 1 still uses the shared pool
        assert _alive(first[1])
        ps.release(1)
        assert _dead(first[1]) and _dead(second[1])
        assert set(ps.live) == set()
        ps.pools(2)
        assert set(ps.live) == {pool_signature(other)}
    finally:
        ps.close()
    assert ps.live == {}


def test_a_stage_that_cannot_build_fails_the_wait_with_its_own_error(ray_session):
    ps = PoolSet([[_step({"no_such_param": 1})]], CTX)
    try:
        with pytest.raises(ModelStageFailed, match=r"model stage motion: its actor could not start: .*ValidationError"):
            ps.wait(0)
    finally:
        ps.close()


def test_model_actors_get_only_the_large_values_their_stage_reads():
    """A long video's decoded proxy and a clip's full frames stay in the chunk task when the actor's stage
    reads keyframes; small values always travel; a filtered item does not get its set-aside data back."""
    import numpy as np

    from vidrd_data.items import Item
    from vidrd_data.runtime import restore_heavy, set_aside_heavy
    from vidrd_data.stages.base import get_stage

    def item(key):
        return Item(key, "s", key, data={"proxy": {"frames": np.zeros((300, 64, 64, 3), np.uint8), "fps": 8},
                                         "frames": np.zeros((16, 128, 128, 3), np.uint8),
                                         "keyframes": np.zeros((2, 128, 128, 3), np.uint8), "caption": "x" * 50})

    a, b = item("a"), item("b")
    requires = get_stage("caption_blip2").requires  # (("keyframes", "frames"),): keyframes first
    kept = {it.key: set_aside_heavy(it, requires) for it in (a, b)}
    assert set(a.data) == {"keyframes", "caption"} and set(kept["a"]) == {"proxy", "frames"}
    b.filter("caption_blip2", "degenerate: test")
    assert set(restore_heavy(a, kept).data) == {"proxy", "frames", "keyframes", "caption"}
    assert restore_heavy(b, kept).data == {}
    c = Item("c", "s", "c", data={"frames": np.zeros((16, 128, 128, 3), np.uint8)})  # no keyframes: frames go
    assert set_aside_heavy(c, requires) == {} and "frames" in c.data
    d = item("d")
    assert set(set_aside_heavy(d, get_stage("clip_align").requires)) == {"proxy"}  # it reads the frames


def test_kept_pools_serve_the_next_equal_build_and_only_that(ray_session):
    """`build(keep_models=True)`: the pools stay loaded for the next build with the same settings (the same
    actors, no second load); other settings or a failed build get fresh ones; release_kept_models stops them."""
    from vidrd_data.pool_set import _KEPT, release_kept_models

    release_kept_models()
    step = _step({"width": 40})
    first = PoolSet([[step]], CTX, keep=True)
    a = first.pools(0)[0]
    first.wait(0)
    first.close()
    assert _alive(a) and len(_KEPT) == 1
    second = PoolSet([[step]], CTX, keep=True)
    assert second.pools(0)[0] is a and not _KEPT  # taken over, not copied
    second.close(succeeded=False)  # a failed build keeps nothing: the pool may be what failed
    assert _dead(a) and not _KEPT
    third = PoolSet([[step]], CTX, keep=True)
    b = third.pools(0)[0]
    third.close()
    other_clip = StageContext(clip={"fps": 8, "size": [32, 32], "frames": 8})
    fourth = PoolSet([[step]], other_clip, keep=True)  # actors were built from the clip spec: not shared
    assert fourth.pools(0)[0] is not b
    fourth.close()
    assert len(_KEPT) == 2
    assert release_kept_models() == 2 and not _KEPT
    assert _dead(b)
    plain = PoolSet([[step]], CTX)  # the default: nothing outlives the build
    c = plain.pools(0)[0]
    plain.close()
    assert _dead(c) and not _KEPT
