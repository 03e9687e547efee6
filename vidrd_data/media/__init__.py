"""All media decoding and encoding: probe, decode (spans, frames), the one-pass long-video scan (scan), shot
changes (shots), encode. In-process PyAV (libav*); ffprobe/ffmpeg where a process is needed."""
