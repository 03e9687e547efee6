"""VidRD's networks: the video UNet and the temporal-aware VAE."""

from .loading import CheckpointMismatchError, is_temporal_key
from .unet_3d import VidRDUNet3DConditionModel, VidRDUNetOutput
from .vae_temporal import TemporalAutoencoderKL

__all__ = [
    "CheckpointMismatchError",
    "TemporalAutoencoderKL",
    "VidRDUNet3DConditionModel",
    "VidRDUNetOutput",
    "is_temporal_key",
]
