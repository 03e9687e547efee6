"""vidrd_data: build text-to-video training shards (WebDataset) from image-text sets, short and long videos."""

__version__ = "0.1.0"
