"""Built-in stages, registered by name (the names used in pipelines/*.yaml)."""

from vidrd_data.stages import common, image_text  # noqa: F401

for _optional in ("short_video", "captioning", "long_video", "caption_minigpt4"):
    try:
        __import__(f"vidrd_data.stages.{_optional}")
    except ModuleNotFoundError as _exc:  # recipe modules still landing in this checkout
        if _exc.name != f"vidrd_data.stages.{_optional}":
            raise
