"""Placement for the plan: where each step of a build may run on the connected Ray cluster, how the GPUs are
shared (model actors, then decoding tasks), and whether model actors could starve the task steps of CPUs.
(The loopback test cluster lives in vidrd_testing.cluster.)
"""

from __future__ import annotations

# ----------------------------------------------------------------------------------------------- placement


def node_table() -> list[dict]:
    """Alive nodes of the connected cluster: id, ip, CPU, GPU (Ray must be initialised)."""
    import ray

    rows = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        rows.append({"id": n["NodeID"][:8], "ip": n.get("NodeManagerAddress", "?"),
                     "cpu": float(res.get("CPU", 0)), "gpu": float(res.get("GPU", 0))})
    return rows


def placement(num_cpus: float, num_gpus: float, nodes: list[dict]) -> tuple[str, bool]:
    """Where one worker of a step fits: ("on any of 3 nodes" | "on GPU nodes: 1 of 3 (...)", fits_somewhere)."""
    fit = [n for n in nodes if n["cpu"] >= num_cpus and n["gpu"] >= num_gpus]
    if num_gpus:
        where = ", ".join(f"{n['ip']}/{n['id']} x{n['gpu']:g}" for n in fit[:4]) + (" ..." if len(fit) > 4 else "")
        return (f"on GPU nodes: {len(fit)} of {len(nodes)} ({where})" if fit else
                f"waits for a GPU node: none of {len(nodes)} node(s) has {num_gpus:g} GPU free"), bool(fit)
    if len(fit) == len(nodes):
        return f"on any of {len(nodes)} node(s)", True
    return f"on {len(fit)} of {len(nodes)} node(s) (needs {num_cpus:g} CPU)", bool(fit)


def actor_starvation(steps, nodes: list[dict]) -> str | None:
    """A warning when a source's model actors could leave no node room for its CPU task steps.

    Actors hold their CPUs for the whole source; if Ray spreads them one per node, a fractional share on
    every small node (e.g. 0.5 of 1 CPU) leaves no node with a whole CPU for a task: the build waits forever.
    """
    actors = sorted((s.resources.num_cpus for s in steps if s.uses_model for _ in range(s.pool_size)), reverse=True)
    task_cpu = max((s.resources.num_cpus for s in steps if not s.uses_model), default=0)
    if not actors or not task_cpu or not nodes:
        return None
    free = sorted((n["cpu"] for n in nodes), reverse=True)
    for i, cpu in enumerate(actors):  # the spread case: round-robin over the nodes
        free[i % len(free)] -= cpu
    if max(free) >= task_cpu:
        return None
    return (f"its {len(actors)} model actor(s) ({', '.join(f'{a:g}' for a in actors)} CPU) can leave no node with "
            f"{task_cpu:g} free CPU for its task steps (the build would wait forever): use nodes with more CPUs "
            f"(ray start --num-cpus) or fewer actors (models.<name>.num_actors)")


# ---------------------------------------------------------------------------------------------------- GPUs


def fit_gpus(step_lists: list[list], cluster_gpus: float, cluster_cpus: float) -> dict:
    """Share the cluster's GPUs for a whole build, in place on the planned steps (after `plan_steps`):

    1. Model actors: every distinct GPU pool of the build may be alive at once (a source's pools, the next
       source's loading ahead, pools shared between sources), so each actor gets 1 / ceil(actors / GPUs) of a
       GPU: a 1-GPU machine running BLIP-2, CLIP and MiniGPT-4 gives each a third instead of waiting forever
       for the GPU the first one holds.
    2. Decoding (stages with `decodes_video`): the whole GPUs the models leave free, spread over the CPU slots
       (media.gpu_decode.decode_gpu_share); none free: those steps stay on the CPU (`decoder: cuda` refuses).
    Returns what was decided, for the plan's summary line."""
    from vidrd_data.media.gpu_decode import decode_gpu_share
    from vidrd_data.pool_set import pool_signature
    from vidrd_data.stages.base import Resources, get_stage

    pools: dict[str, int] = {}
    for steps in step_lists:
        for s in steps:
            if s.uses_model and s.resources.num_gpus:
                pools.setdefault(pool_signature(s), s.pool_size)
    actors = sum(pools.values())
    share = 1.0
    if actors and cluster_gpus >= 1 and actors > cluster_gpus:
        share = 1.0 / -(-actors // int(cluster_gpus))
    for steps in step_lists:
        for s in steps:
            if s.uses_model and s.resources.num_gpus:
                r = s.resources
                s.resources = Resources(r.num_cpus, min(r.num_gpus, share), r.memory_mb)
    model_gpus = actors * share if actors else 0.0
    decode = decode_gpu_share(cluster_gpus, cluster_cpus, model_gpus)
    for steps in step_lists:
        for s in steps:
            if s.uses_model:
                continue
            decoders = {p.get("decoder", "auto") for n, p in s.stages if getattr(get_stage(n), "decodes_video", False)}
            decoders.discard("cpu")
            if not decoders:
                continue
            if decode:
                r = s.resources
                s.resources = Resources(r.num_cpus, max(r.num_gpus, decode), r.memory_mb)
            elif "cuda" in decoders:
                names = " + ".join(n for n, _ in s.stages)
                raise ValueError(f"stage {names}: decoder: cuda, but no whole GPU is free for decoding ({cluster_gpus:g} "
                                 f"GPU(s), {model_gpus:g} held by {actors} model actor(s)); use decoder: auto or cpu, "
                                 f"or put models on the CPU (models.<name>.device: cpu)")
    return {"model_actors": actors, "model_share": share if actors else 0.0, "decode_share": decode}
