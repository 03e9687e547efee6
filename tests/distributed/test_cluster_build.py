"""`vidrd-data build --ray-address` on a real two-node cluster (head + worker `ray start` processes on
loopback): same keys as embedded Ray; a killed worker process and a killed worker node lose nothing and
double nothing; `--retry-failed` reruns only the failed input; too many failures exit 3.

Test order matters (one module-scoped cluster): the node-kill test runs last, it takes the worker node down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import yaml

from tests.data_build.helpers import image_source, status_rows, tar_keys, write_folder_dataset, write_manifest
from vidrd_data.build import build
from vidrd_testing.cluster import tree

REPO = Path(__file__).resolve().parents[2]
N_PHOTOS = 32

pytestmark = pytest.mark.timeout(240)


def run_cli(cluster, manifest: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(manifest), "-q",
                           "--ray-address", cluster.address, *args], cwd=REPO, env=cluster.env, capture_output=True,
                          text=True, timeout=timeout)


def start_cli(cluster, manifest: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(manifest), "-q",
                             "--ray-address", cluster.address, *args], cwd=REPO, env={**cluster.env, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stage_workers(cluster) -> dict[int, int]:
    """Worker processes running a chunk of a recipe's stages right now (`run_stages` tasks): pid -> node index."""
    found = {}
    for i, node in enumerate(cluster.nodes):
        for p in tree(node.pid):
            try:
                title = p.cmdline()[0]
            except (psutil.Error, IndexError):
                continue
            if title.startswith("ray::") and "run_stages" in title:
                found[p.pid] = i
    return found


class NodeWatch(threading.Thread):
    """Records which nodes ran a stage task while a build runs."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster, self.nodes, self.stop = cluster, set(), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.nodes.update(stage_workers(self.cluster).values())
            time.sleep(0.05)


def assert_exact_output(output: Path, expected_keys: list[str], n_inputs: int) -> None:
    """Exactly the expected samples, each once, every tar readable to its end with 4 members per key."""
    keys = tar_keys(output)  # reads every member of every tar, checks mp4/jpg/txt/json per key
    assert not [k for k, n in Counter(keys).items() if n > 1], "a sample was written twice"
    assert sorted(keys) == sorted(expected_keys)
    for tar_path in (output / "shards").glob("*.tar"):
        with tarfile.open(tar_path) as tf:
            assert len(tf.getmembers()) % 4 == 0
    rows = status_rows(output)
    assert rows["input_id"].is_unique and len(rows) == n_inputs, "one status row per input"
    shards = output / "shards"
    assert not list(shards.glob("*.tmp"))
    assert len(list(shards.glob("*.tar"))) == len(list(shards.glob("*_stats.json")))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos") / "imgs"
    write_folder_dataset(root, N_PHOTOS, size=(96, 80))
    return root


@pytest.fixture(scope="module")
def reference_keys(photos, tmp_path_factory, ray_session) -> list[str]:
    """The undisturbed run (embedded, in-process Ray) on the same inputs."""
    d = tmp_path_factory.mktemp("ref")
    m = write_manifest(d / "m.yaml", d / "out", [image_source("p", photos)])
    report = build(m, progress=False, out=lambda s: None)
    assert report.counts["success"] == N_PHOTOS
    return tar_keys(d / "out")


def _demo_manifest(repo: Path, demo: Path, out: Path, path: Path) -> Path:
    doc = yaml.safe_load((repo / "manifests" / "demo.yaml").read_text())
    doc["output"] = str(out)
    for s in doc["sources"]:  # the manifest's relative paths, anchored at the repo (recipes are named)
        for k in ("root", "path", "csv", "splits_dir"):
            if isinstance(s["input"].get(k), str):
                s["input"][k] = str(repo / s["input"][k])
    for model in doc.get("models", {}).values():
        for k in ("path", "checkpoint"):
            if isinstance(model.get(k), str) and (repo / model[k]).exists():
                model[k] = str(repo / model[k])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.timeout(600)
def test_demo_on_two_nodes_has_the_embedded_keys(cluster, demo_data, ray_session, tmp_path):
    """The whole demo manifest (photos, short videos with a BLIP-2 actor pool, long videos with two pools)."""
    embedded = _demo_manifest(REPO, demo_data, tmp_path / "embedded", tmp_path / "embedded.yaml")
    build(embedded, progress=False, out=lambda s: None)
    on_cluster = _demo_manifest(REPO, demo_data, tmp_path / "cluster", tmp_path / "cluster.yaml")

    watch = NodeWatch(cluster)
    watch.start()
    r = run_cli(cluster, on_cluster, timeout=400)
    watch.stop.set()
    watch.join()
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 node(s)" in r.stdout and "on any of 2 node(s)" in r.stdout, r.stdout  # the plan shows placement
    keys = tar_keys(tmp_path / "cluster")
    assert keys and sorted(keys) == sorted(tar_keys(tmp_path / "embedded"))
    assert watch.nodes == {0, 1}, f"stage tasks ran only on node(s) {watch.nodes}"


def test_killed_worker_process_loses_and_doubles_nothing(cluster, photos, reference_keys, tmp_path):
    m = write_manifest(tmp_path / "m.yaml", tmp_path / "out", [image_source("p", photos)])
    proc = start_cli(cluster, m)
    killed = []
    deadline = time.time() + 90
    # Kill two workers while they run a stage task (SIGKILL: no cleanup, as on an OOM kill or a crash).
    while len(killed) < 2 and proc.poll() is None and time.time() < deadline:
        for pid in stage_workers(cluster):
            if pid not in killed:
                psutil.Process(pid).kill()
                killed.append(pid)
                break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=150)
    print(f"killed stage workers {killed}\n{out}")
    assert killed, "no stage worker seen to kill"
    assert proc.returncode == 0, err[-3000:]
    assert "0 failed" in out, out  # the killed tasks were retried, not recorded as lost
    assert_exact_output(tmp_path / "out", reference_keys, N_PHOTOS)
    # The workers wrote the shards: each marker names its writer's node; both nodes wrote some.
    writers = {json.loads(p.read_text())["writer"]["node_id"] for p in (tmp_path / "out" / "shards").glob("*_stats.json")}
    assert len(writers) == 2 and None not in writers, writers


def test_a_task_out_of_retries_is_recorded_failed_then_retried(cluster, photos, reference_keys, tmp_path):
    """No retries left (VIDRD_TASK_RETRIES=0) and its worker killed: that task's inputs become `failed`
    rows ("lost"), the rest of the build goes on, and --retry-failed completes the output exactly."""
    m = write_manifest(tmp_path / "m.yaml", tmp_path / "out", [image_source("p", photos)])
    proc = start_cli(cluster, m, "--max-failed-fraction", "0.02", env={"VIDRD_TASK_RETRIES": "0"})
    killed = None
    deadline = time.time() + 90
    while killed is None and proc.poll() is None and time.time() < deadline:
        for pid in stage_workers(cluster):
            psutil.Process(pid).kill()
            killed = pid
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=150)
    assert killed and proc.returncode == 3, err[-3000:]  # lost inputs count as failed: > 2% failed
    rows = status_rows(tmp_path / "out")
    lost = rows[rows["status"] == "failed"]
    assert len(rows) == N_PHOTOS and rows["input_id"].is_unique
    assert 1 <= len(lost) <= 4 and lost["reason"].str.contains("lost").all(), lost  # one task's block
    assert "failed at pipeline: lost" in out, out  # the report groups them by reason

    r = run_cli(cluster, m, "--retry-failed")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{len(lost)} failed input(s) retried" in r.stdout, r.stdout
    assert_exact_output(tmp_path / "out", reference_keys, N_PHOTOS)
    assert (status_rows(tmp_path / "out")["status"] == "success").all()


def test_retry_failed_reruns_only_the_fixed_input(cluster, tmp_path):
    root = tmp_path / "imgs"
    write_folder_dataset(root, 8, size=(96, 80))
    caption = (root / "img003.txt").read_text()
    (root / "img003.txt").unlink()
    out = tmp_path / "out"
    m = write_manifest(tmp_path / "m.yaml", "file://" + str(out), [image_source("p", root)])  # an fsspec URL

    r = run_cli(cluster, m, "--max-failed-fraction", "0.1")
    assert r.returncode == 3, (r.stdout, r.stderr[-2000:])  # 1/8 failed > 10%
    assert "no caption file" in r.stdout and "1/8 inputs failed" in r.stderr
    rows = status_rows(out).set_index("input_id")
    assert rows.loc["img003", "status"] == "failed" and (rows["status"] == "success").sum() == 7
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "shards").iterdir()}

    (root / "img003.txt").write_text(caption)
    r = run_cli(cluster, m, "--retry-failed", "--max-failed-fraction", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 failed input(s) retried" in r.stdout, r.stdout
    rows = status_rows(out)
    assert rows["input_id"].is_unique and len(rows) == 8 and (rows["status"] == "success").all()
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "shards").iterdir()}
    assert {k: after[k] for k in before} == before, "committed shards were rewritten"
    new = sorted(set(after) - set(before))
    assert len(new) == 3 and rows.set_index("input_id").loc["img003", "shard"] + ".tar" in new
    assert sorted(tar_keys(out)) == sorted(f"p_img{i:03d}" for i in range(8))


def test_killed_worker_node_loses_and_doubles_nothing(cluster, photos, reference_keys, tmp_path):
    """Last: takes the worker node down for good. Finishes on the head; or, if Ray gives up, a resume does."""
    m = write_manifest(tmp_path / "m.yaml", tmp_path / "out", [image_source("p", photos)])
    proc = start_cli(cluster, m)
    deadline = time.time() + 90
    while proc.poll() is None and time.time() < deadline and 1 not in stage_workers(cluster).values():
        time.sleep(0.02)
    assert proc.poll() is None, "the build ended before the worker node ran a task"
    committed = len(list((tmp_path / "out" / "shards").glob("*_stats.json")))
    cluster.kill_node(1)
    out, err = proc.communicate(timeout=180)
    print(f"node killed with {committed} shard(s) committed; build exit {proc.returncode}\n{out}\n{err[-1500:]}")
    if proc.returncode != 0:  # the documented recovery: rerun the same command, committed shards are kept
        r = subprocess.run([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(m), "-q",
                            "--ray-address", cluster.address, "--retry-failed"], cwd=REPO, env=cluster.env,
                           capture_output=True, text=True, timeout=150)
        assert r.returncode == 0, r.stderr[-3000:]
    assert_exact_output(tmp_path / "out", reference_keys, N_PHOTOS)
    assert (status_rows(tmp_path / "out")["status"] == "success").all()
