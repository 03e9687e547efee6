"""VidRD's networks: the video UNet and the temporal-aware VAE."""

from .loading import CheckpointMismatchError, is_temporal_key
from .sd21_configs import SD21_BASE_UNET2D_CONFIG, SD21_BASE_VAE_CONFIG, sd21_base_vidrd_unet_config
from .unet_3d import VidRDUNet3DConditionModel, VidRDUNetOutput
from .vae_temporal import TemporalAutoencoderKL

__all__ = [
    "CheckpointMismatchError",
    "SD21_BASE_UNET2D_CONFIG",
    "SD21_BASE_VAE_CONFIG",
    "TemporalAutoencoderKL",
    "VidRDUNet3DConditionModel",
    "VidRDUNetOutput",
    "is_temporal_key",
    "sd21_base_vidrd_unet_config",
]
