"""Where training numbers go: a CSV always (easy to read back), TensorBoard when asked and installed,
and a tqdm bar with loss, step/s and samples/s on the main process."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


class MetricsLog:
    def __init__(self, output_dir: str | Path, backend: str = "tensorboard", enabled: bool = True):
        self.enabled = enabled
        self.dir = Path(output_dir) / "logs"
        self._csv = self._writer = self._tb = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._csv_file = open(self.dir / "metrics.csv", "a", newline="")
        self._fields: list[str] | None = None
        if backend == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.dir / "tensorboard"))
            except ImportError:
                logger.warning("tensorboard is not installed: logging to %s only", self.dir / "metrics.csv")

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **values}
        if self._fields is None or set(row) - set(self._fields):
            self._fields = list(row)
            self._csv = csv.DictWriter(self._csv_file, fieldnames=self._fields, extrasaction="ignore")
            self._csv.writeheader()
        self._csv.writerow(row)
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
