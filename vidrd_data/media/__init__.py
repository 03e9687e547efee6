"""Media helpers: in-process encode/decode with PyAV (libav*), ffprobe/ffmpeg where a process is needed."""
