"""Source readers, registered by (kind, format)."""

from vidrd_data.sources import image_text  # noqa: F401

for _optional in ("short_video", "long_video"):
    try:
        __import__(f"vidrd_data.sources.{_optional}")
    except ModuleNotFoundError as _exc:  # that recipe's readers are not installed in this checkout
        if _exc.name != f"vidrd_data.sources.{_optional}":
            raise
