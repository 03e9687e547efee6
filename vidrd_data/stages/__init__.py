"""Built-in stages, registered by name (the names used in pipelines/*.yaml)."""

from vidrd_data.stages import (  # noqa: F401
    caption_minigpt4,
    captioning,
    common,
    curation_dedup,
    curation_signals,
    image_text,
    long_video,
    long_video_segments,
    short_video,
)
