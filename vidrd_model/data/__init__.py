"""Training data: read `vidrd-data build` shards (webdataset), decode clips (PyAV), tokenise captions."""

from .shard_loader import LoaderConfig, LoaderProgress, ShardClipDataset, build_train_loader
from .shard_spec import expand_shard_spec
from .video_decode import ClipSpec, SampleError, decode_image_frame, decode_video_clip

__all__ = [
    "ClipSpec", "LoaderConfig", "LoaderProgress", "SampleError", "ShardClipDataset", "build_train_loader",
    "decode_image_frame", "decode_video_clip", "expand_shard_spec",
]
