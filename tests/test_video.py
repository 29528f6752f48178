"""The lazy video reader: exact counts, exact frames, seeking, bounded cache, bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_sam2_track.frames import LazyFrames
from napari_sam2_track.video import VideoFrames, VideoReadError, open_video

from conftest import counting_frames, run_ffmpeg, sequential_decode, write_video


def _assert_random_access_matches(video: VideoFrames, reference: np.ndarray, seed: int = 0):
    rng = np.random.default_rng(seed)
    for index in rng.integers(0, len(reference), size=20):
        np.testing.assert_array_equal(video[int(index)], reference[index], f"frame {index}")


@pytest.mark.parametrize(
    ("name", "n_frames", "frame_shape"),
    [("bedroom.mp4", 200, (540, 960, 3)), ("02_cups.mp4", 300, (720, 1280, 3))],
)
def test_shared_videos_have_exact_shape_and_frames(name, n_frames, frame_shape):
    from conftest import shared_video

    path = shared_video(name)
    video = VideoFrames(path)
    assert video.shape == (n_frames, *frame_shape)
    assert video.dtype == np.uint8
    reference = sequential_decode(path)
    assert len(reference) == n_frames
    _assert_random_access_matches(video, reference)
    np.testing.assert_array_equal(video[-1], reference[-1])


def test_frames_across_keyframes_match_sequential_decode_in_any_order(tmp_path):
    # Short GOPs with B-frames: seeking lands on many different keyframes.
    path = write_video(
        tmp_path / "gop.mp4", counting_frames(90), output_params=["-g", "10", "-bf", "2"]
    )
    reference = sequential_decode(path)
    video = VideoFrames(path)
    assert len(video) == 90
    assert len(video.index.keyframes) >= 9
    for index in [0, 89, 1, 45, 44, 10, 9, 11, 70, 20, 88, 3]:
        np.testing.assert_array_equal(video[index], reference[index], f"frame {index}")


def test_a_jump_seeks_instead_of_decoding_from_the_start(tmp_path):
    path = write_video(tmp_path / "gop.mp4", counting_frames(120), output_params=["-g", "10"])
    video = VideoFrames(path, max_decoders=1)
    video[3]
    video[100]
    cached = set(range(120)) & {i for i in range(120) if i in video._cache}
    # Only the frames read (plus read-ahead) are decoded into memory, not 4..99.
    assert not cached & set(range(10, 100))
    assert 100 in cached


def test_variable_frame_rate_video_keeps_every_frame_once(tmp_path):
    frames = counting_frames(30)
    # A one-second gap after frame 10: a constant-rate decode would duplicate frames.
    path = write_video(
        tmp_path / "vfr.mkv",
        frames,
        output_params=["-vf", "setpts=N/25/TB+gte(N\\,10)/TB", "-fps_mode", "vfr"],
    )
    video = VideoFrames(path)
    assert len(video) == 30
    reference = sequential_decode(path)
    assert len(reference) == 30
    _assert_random_access_matches(video, reference)
    # Lossy, but each frame is recognisably the one written at that index.
    for index in (0, 10, 11, 29):
        bar = int(np.argmax(video[index][32, :, 0] > 200))
        assert bar == (4 * index) % 92


def test_video_starting_late_with_audio_seeks_exactly(tmp_path):
    plain = write_video(tmp_path / "plain.mp4", counting_frames(60), output_params=["-g", "8"])
    path = tmp_path / "late.mkv"
    # Video starts 1.3 s into the file, audio at 0: -ss must be relative to the file.
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "sine=duration=4",
        "-itsoffset",
        "1.3",
        "-i",
        str(plain),
        "-map",
        "0:a",
        "-map",
        "1:v",
        "-c:v",
        "copy",
        "-c:a",
        "libopus",
        str(path),
    )
    video = VideoFrames(path)
    assert len(video) == 60
    reference = sequential_decode(path)
    for index in [50, 7, 8, 9, 33, 1, 59]:
        np.testing.assert_array_equal(video[index], reference[index], f"frame {index}")


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [(".avi", "mpeg4"), (".webm", "libvpx-vp9"), (".mov", "libx264"), (".m4v", "libx264")],
)
def test_other_containers_open(tmp_path, suffix, codec):
    path = write_video(tmp_path / f"clip{suffix}", counting_frames(12), codec=codec)
    video = open_video(path)
    assert video.shape == (12, 64, 96, 3)
    np.testing.assert_array_equal(video[7], sequential_decode(path)[7])


def test_numpy_style_indexing(tmp_path):
    path = write_video(tmp_path / "clip.mp4", counting_frames(20))
    reference = sequential_decode(path)
    video = VideoFrames(path)
    np.testing.assert_array_equal(video[-1], reference[-1])
    np.testing.assert_array_equal(video[2:8:3], reference[2:8:3])
    np.testing.assert_array_equal(video[5, 10:20, ::2, 0], reference[5, 10:20, ::2, 0])
    np.testing.assert_array_equal(video[[4, 1, 4]], reference[[4, 1, 4]])
    np.testing.assert_array_equal(video[..., 1], reference[..., 1])
    np.testing.assert_array_equal(np.asarray(video), reference)
    assert video.ndim == 4 and len(video) == 20
    with pytest.raises(IndexError, match="out of range"):
        video[20]
    with pytest.raises(ValueError, match="read-only"):
        video[0][0, 0, 0] = 1


def test_cache_stays_within_its_byte_budget(tmp_path):
    path = write_video(tmp_path / "clip.mp4", counting_frames(40))
    frame_bytes = 64 * 96 * 3
    video = VideoFrames(path, cache_bytes=5 * frame_bytes)
    for index in range(40):
        video[index]
    assert video.cache_info()["bytes"] <= 5 * frame_bytes
    assert video.cache_info()["frames"] == 5


class GatedFrames(LazyFrames):
    """Frames whose frame 3 decodes only once ``finish`` is set."""

    def __init__(self) -> None:
        super().__init__(4, 2, 2, cache_bytes=2**20)
        self.decoding, self.finish = threading.Event(), threading.Event()

    def _load(self, index: int) -> np.ndarray:
        if index == 3:
            self.decoding.set()
            self.finish.wait()
        frame = np.full((2, 2, 3), index, np.uint8)
        self._cache.put(index, frame)
        return frame


def test_a_cached_frame_never_waits_for_another_readers_decode():
    frames = GatedFrames()
    frames[0]
    threading.Thread(target=frames.frame, args=(3,), daemon=True).start()
    assert frames.decoding.wait(timeout=10)
    got = []
    reader = threading.Thread(target=lambda: got.append(frames[0]), daemon=True)
    reader.start()
    reader.join(timeout=10)  # a bound, not a wait: the read returns at once
    waited = reader.is_alive()
    frames.finish.set()
    assert not waited, "a cached frame waited for the decode of another"
    assert got[0][0, 0, 0] == 0
    assert frames[3][0, 0, 0] == 3


def test_frame_folder_reads_in_numeric_order(tmp_path):
    import imageio.v3 as iio

    frames = counting_frames(12)
    for i, frame in enumerate(frames):
        iio.imwrite(tmp_path / f"frame_{i + 1}.png", frame)
    (tmp_path / "notes.txt").write_text("not a frame")
    video = open_video(tmp_path)
    assert video.shape == (12, 64, 96, 3)
    np.testing.assert_array_equal(video[:], frames)  # PNG is lossless
    assert video.name == tmp_path.name


def test_frame_folder_converts_greyscale_and_16_bit(tmp_path):
    import imageio.v3 as iio

    grey = np.arange(64 * 96, dtype=np.uint16).reshape(64, 96) * 10
    iio.imwrite(tmp_path / "000.png", grey)
    iio.imwrite(tmp_path / "001.png", grey[::-1])
    video = open_video(tmp_path)
    assert video.shape == (2, 64, 96, 3)
    np.testing.assert_array_equal(video[0][..., 0], video[0][..., 2])
    # 16-bit values are stretched between the folder's robust percentiles.
    assert video[0][-1, -1, 0] == 255 and video[0][0, 0, 0] == 0
    assert abs(int(video[0][32, 48, 0]) - round(int(grey[32, 48]) * 255 / int(grey.max()))) <= 1


def test_frame_folder_of_mixed_sizes_is_refused(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "0.png", np.zeros((10, 10, 3), np.uint8))
    iio.imwrite(tmp_path / "1.png", np.zeros((12, 10, 3), np.uint8))
    with pytest.raises(VideoReadError, match="all frames must be one size"):
        open_video(tmp_path)


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(VideoReadError, match="holds no JPEG or PNG frames"):
        open_video(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.mp4", None, "does not exist"),
        ("empty.mp4", b"", "is empty"),
        ("noise.mp4", np.random.default_rng(0).bytes(50_000), "could not be read as a video"),
        ("text.mov", b"hello, not a video\n" * 100, "could not be read as a video"),
        ("table.csv", b"a,b\n", "is not a video file"),
    ],
    ids=["missing", "empty", "corrupt", "non-video", "wrong-suffix"],
)
def test_bad_files_give_one_clear_sentence(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoReadError, match=message) as info:
        open_video(path)
    text = str(info.value)
    assert "\n" not in text and text.endswith(".")


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.mkv"
    run_ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libopus", str(path))
    with pytest.raises(VideoReadError, match="no video stream"):
        open_video(path)


def test_truncated_mp4_is_refused(tmp_path):
    # imageio-ffmpeg writes the index (moov) at the end: cut it off.
    path = write_video(tmp_path / "clip.mp4", counting_frames(30))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="could not be read as a video"):
        open_video(path)


def test_truncated_stream_opens_with_the_frames_it_still_has(tmp_path):
    path = write_video(tmp_path / "clip.mkv", counting_frames(60))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    video = open_video(path)
    assert 0 < len(video) < 60
    reference = sequential_decode(path)
    np.testing.assert_array_equal(video[len(video) - 1], reference[len(video) - 1])
