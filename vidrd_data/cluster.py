"""Placement for the plan: where each step of a build may run on the connected Ray cluster, and whether
model actors could starve the task steps of CPUs. (The loopback test cluster lives in vidrd_testing.cluster.)
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
