"""Saving, resuming and exporting the one diffusers model a training task trains (UNet or VAE)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from ..checkpoint_layout import EMA_SUFFIX

WEIGHTS = "diffusion_pytorch_model.safetensors"


class TrainedModelWeights:
    """Mixin: the task sets `component` ("unet" / "vae": the folder name), `weights_label`, `trained_module`
    and `trainable`."""

    component: str
    weights_label: str

    def save_weights(self, folder: Path, ema=None) -> None:
        self.trained_module.save_pretrained(folder / self.component)
        if ema is not None:
            with ema.swapped_in(self.trainable):
                self.trained_module.save_pretrained(folder / f"{self.component}{EMA_SUFFIX}")

    def load_weights(self, folder: Path) -> None:
        path = folder / self.component
        missing, unexpected = self.trained_module.load_state_dict(load_file(str(path / WEIGHTS)), strict=False)
        if missing or unexpected:
            raise RuntimeError(f"{path} does not fit this {self.weights_label} (missing {len(missing)}, "
                               f"unexpected {len(unexpected)} keys): resume with the model it was trained from")

    def export(self, out_dir: Path, base: str, ema=None) -> Path:
        """A full model folder for the sampler, with the EMA weights when EMA is on."""
        from .model_export import export_model_folder

        def save(path):
            if ema is None:
                self.trained_module.save_pretrained(path)
            else:
                with ema.swapped_in(self.trainable):
                    self.trained_module.save_pretrained(path)
        return export_model_folder(base, out_dir, self.component, save)
