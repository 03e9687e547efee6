"""vidrd_model: the VidRD video UNet, temporal-aware VAE, trainer, iterative sampler and evaluation."""

__version__ = "0.1.0"
