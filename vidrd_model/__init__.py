"""vidrd_model: the VidRD video UNet, temporal-aware VAE, trainer, iterative sampler and evaluation."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # imported on first use: `vidrd-model --help` and `import vidrd_model` stay free of torch / diffusers
    if name == "VidRDPipeline":
        from .pipeline_vidrd import VidRDPipeline

        return VidRDPipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
