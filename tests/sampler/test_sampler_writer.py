import numpy as np
import pytest

from vidrd_model.sampling.decode import kept_frames, output_frame_count
from vidrd_model.sampling.writer import VideoWriter, probe_video, read_mp4_comment


def _frames(n, h=32, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_clips_are_appended_and_settings_stored(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, fps=8, metadata={"prompt": "x", "alpha": 4.0}, gif_path=tmp_path / "v.gif",
                     grid_path=tmp_path / "g.png", grid_thumb=16) as w:
        for k in range(3):
            w.write_clip(_frames(4, seed=k))
    assert probe_video(path)["frames"] == 12 and probe_video(tmp_path / "v.gif")["frames"] == 12
    assert read_mp4_comment(path) == {"prompt": "x", "alpha": 4.0}
    assert (tmp_path / "v.json").is_file() and (tmp_path / "g.png").is_file()


def test_error_mid_video_leaves_a_playable_mp4_without_sidecar(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, grid_path=tmp_path / "g.png") as w:
            w.write_clip(_frames(4))
            raise KeyboardInterrupt
    assert probe_video(path)["frames"] == 4
    assert not (tmp_path / "v.json").exists() and not (tmp_path / "g.png").exists()


def test_writer_rejects_what_h264_cannot_take(tmp_path):
    with pytest.raises(ValueError, match=".mp4"):
        VideoWriter(tmp_path / "v.avi")
    with pytest.raises(ValueError, match="even frame sizes"):
        VideoWriter(tmp_path / "v.mp4").write_clip(_frames(2, h=33))
    with pytest.raises(ValueError, match="uint8"):
        VideoWriter(tmp_path / "v.mp4").write_clip(_frames(2).astype(np.float32))


def test_kept_frames_and_counts():
    assert kept_frames(0, 8, 4, True) == slice(0, 8)
    assert kept_frames(1, 8, 4, True) == slice(4, 8)
    assert kept_frames(1, 8, 4, False) == slice(0, 8)
    assert output_frame_count(4, 8, 4, False) == 32 and output_frame_count(4, 8, 4, True) == 20
