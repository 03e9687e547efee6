"""Source readers, registered by (kind, format)."""

from vidrd_data.sources import image_text, long_video, short_video  # noqa: F401
