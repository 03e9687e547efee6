"""Where training numbers go: a CSV always (easy to read back), TensorBoard when asked and installed,
and a tqdm bar with loss, step/s and samples/s on the main process."""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..checkpoint_layout import LOGS

logger = logging.getLogger(__name__)


class MetricsLog:
    """`start_step`: the step this run starts from (0, or the resumed checkpoint's). Rows and TensorBoard events
    of later steps (logged by a run that died before its next checkpoint) are dropped, so both logs carry each
    step once, and the CSV keeps exactly one header row (rewritten, never repeated, when a new column appears)."""

    def __init__(self, output_dir: str | Path, backend: str = "tensorboard", enabled: bool = True, start_step: int = 0):
        self.enabled = enabled
        self.dir = Path(output_dir) / LOGS
        self._tb = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.dir / "metrics.csv"
        self._fields, rows = _read_rows(self.csv_path)
        self._fields = self._fields or None
        kept = [r for r in rows if _step_of(r) is not None and _step_of(r) <= start_step]
        if rows:
            self._rewrite(kept)
        self._csv_file = open(self.csv_path, "a", newline="")
        if backend == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
                # purge_step: TensorBoard hides events at or after it that an earlier, interrupted run wrote
                self._tb = SummaryWriter(str(self.dir / "tensorboard"), purge_step=start_step + 1)
            except ImportError:
                logger.warning("tensorboard is not installed: logging to %s only", self.csv_path)

    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.csv_path)

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **values}
        if self._fields is None or set(row) - set(self._fields):
            # a new column: the file gets the wider header once, with the earlier rows blank in it
            self._csv_file.close()
            _, rows = _read_rows(self.csv_path)
            self._fields = list(self._fields or []) + [k for k in row if k not in (self._fields or [])]
            self._rewrite(rows)
            self._csv_file = open(self.csv_path, "a", newline="")
        csv.DictWriter(self._csv_file, fieldnames=self._fields, restval="").writerow(row)
        self._csv_file.flush()
        if self._tb:
            for name, value in values.items():
                self._tb.add_scalar(name, value, step)

    def log_video(self, step: int, tag: str, video_uint8) -> None:
        """(T, H, W, 3) uint8 numpy -> TensorBoard video (needs moviepy for GIF encoding; skipped if absent)."""
        if self._tb is None:
            return
        import torch
        try:
            self._tb.add_video(tag, torch.from_numpy(video_uint8).permute(0, 3, 1, 2)[None], step, fps=8)
        except Exception as exc:  # noqa: BLE001 - a missing optional encoder must not stop training
            logger.info("validation video not sent to TensorBoard (%s); the mp4 is on disk", exc)

    def close(self) -> None:
        if self.enabled:
            self._csv_file.close()
            if self._tb:
                self._tb.close()


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    if not path.is_file() or path.stat().st_size == 0:
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _step_of(row: dict) -> int | None:
    try:
        return int(row.get("step", ""))
    except ValueError:  # a repeated header row left by an older version
        return None


class Progress:
    """A progress bar whose postfix shows the latest loss, optimizer steps/s and samples/s."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str):
        self.bar = tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True)
        self._t0, self._steps, self._samples = time.perf_counter(), 0, 0

    def update(self, samples: int, loss: float) -> dict[str, float]:
        self._steps += 1
        self._samples += samples
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rates = {"steps_per_s": self._steps / elapsed, "samples_per_s": self._samples / elapsed}
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", step_s=f"{rates['steps_per_s']:.2f}",
                             samples_s=f"{rates['samples_per_s']:.1f}", refresh=False)
        return rates

    def close(self) -> None:
        self.bar.close()
