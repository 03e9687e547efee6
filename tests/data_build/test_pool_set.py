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
        return all(ray.get([a.ready.remote() for a in actors], timeout=30))
    except Exception:  # noqa: BLE001
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
        assert not _alive(first[1]) and not _alive(second[1])
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
