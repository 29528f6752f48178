"""Reading a video backward: a window of decoded frames behind the one asked for."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from napari_sam2_track.frames import reads_backward
from napari_sam2_track.video import VideoFrames, open_video

from conftest import counting_frames, sequential_decode, write_video

FRAME_BYTES = 64 * 96 * 3


def _gop_video(tmp_path, n_frames: int = 120, gop: int = 30):
    frames = counting_frames(n_frames)
    return write_video(tmp_path / "gop.mp4", frames, output_params=["-g", str(gop), "-bf", "2"])


def test_reading_backward_means_just_before_a_recent_request():
    assert reads_backward(9, [3, 10], reach=8)
    assert reads_backward(2, [10, 40], reach=8)
    assert not reads_backward(1, [10, 40], reach=8)  # a jump back, not a step
    assert not reads_backward(10, [10, 3], reach=8)  # the same frame again
    assert not reads_backward(5, [], reach=8)


def test_the_keyframe_before_a_frame_is_where_its_decode_starts(tmp_path):
    video = VideoFrames(_gop_video(tmp_path, 70))
    keyframes = video.index.keyframes.tolist()
    assert keyframes[0] == 0 and len(keyframes) >= 3
    for index in (0, keyframes[1] - 1, keyframes[1], keyframes[1] + 1, 69):
        assert video.index.keyframe_before(index) == max(k for k in keyframes if k <= index)


def test_stepping_backward_gives_the_frames_of_a_sequential_decode(tmp_path):
    path = _gop_video(tmp_path, 90, gop=10)
    reference = sequential_decode(path)
    video = VideoFrames(path, window_bytes=12 * FRAME_BYTES)
    for index in range(89, -1, -1):
        np.testing.assert_array_equal(video[index], reference[index], f"frame {index}")
    assert video.cache_info()["window_frames"] > 0  # the frames came through the window


def test_backward_window_stays_within_its_byte_budget(tmp_path):
    path = _gop_video(tmp_path, 60)
    video = VideoFrames(path, cache_bytes=2 * FRAME_BYTES, window_bytes=6 * FRAME_BYTES)
    assert video.window_frames == 6
    for index in range(59, -1, -1):
        video[index]
        assert video.cache_info()["window_bytes"] <= 6 * FRAME_BYTES
    # Frames stepped past were evicted: only the last fill, 0..5, is left.
    assert {i for i in range(60) if i in video._window} == set(range(6))


def test_steps_back_after_the_first_seek_start_no_decoder(tmp_path):
    path = _gop_video(tmp_path, 120)
    video = VideoFrames(path, window_bytes=16 * FRAME_BYTES)
    video[100]
    video[99]  # the first step back decodes 92..99 in one pass
    starts = video.decoder_starts
    assert video.cache_info()["window_frames"] == VideoFrames.first_fill
    for index in range(98, 91, -1):
        video[index]
    assert video.decoder_starts == starts
    for index in range(91, -1, -1):
        video[index]
    # 92 more steps back, in passes of up to 16 frames that stop at keyframes.
    keyframes_crossed = int(np.sum(video.index.keyframes < 92))
    assert video.decoder_starts - starts <= 92 // 16 + 1 + keyframes_crossed


def test_backward_fills_start_at_the_keyframe_they_would_cross(tmp_path):
    path = _gop_video(tmp_path, 120)
    video = VideoFrames(path, window_bytes=40 * FRAME_BYTES)
    for index in range(100, 90, -1):
        video[index]
    # The second fill (16 frames, 76..91) would cross a keyframe; it starts there.
    keyframe = video.index.keyframe_before(91)
    assert 76 < keyframe <= 91
    assert {i for i in range(120) if i in video._window} == set(range(keyframe, 100))


def test_lone_steps_back_decode_short_stretches(tmp_path):
    path = _gop_video(tmp_path, 120)
    video = VideoFrames(path, window_bytes=40 * FRAME_BYTES)
    for index in (100, 99, 50, 49):  # two jumps, each followed by one step back
        video[index]
    # Each step back filled first_fill frames; a jump does not carry a run on.
    assert video.cache_info()["window_frames"] == 2 * VideoFrames.first_fill


def test_without_a_window_each_step_back_seeks(tmp_path):
    path = _gop_video(tmp_path, 60)
    reference = sequential_decode(path)
    video = open_video(path, window_bytes=0)
    video[50]
    starts = video.decoder_starts
    for index in range(49, 39, -1):
        np.testing.assert_array_equal(video[index], reference[index], f"frame {index}")
    assert video.decoder_starts - starts == 10
    assert video.cache_info()["window_frames"] == 0


def test_forward_reading_uses_one_decoder_and_no_window(tmp_path):
    path = _gop_video(tmp_path, 60)
    video = VideoFrames(path)
    for index in range(60):
        video[index]
    assert video.decoder_starts == 1
    assert video.cache_info()["window_frames"] == 0


def test_jumps_between_backward_steps_stay_exact(tmp_path):
    path = _gop_video(tmp_path, 120, gop=10)
    reference = sequential_decode(path)
    video = VideoFrames(path, window_bytes=10 * FRAME_BYTES)
    order = [100, 99, 98, 30, 29, 28, 97, 96, 10, 9, 119, 0, 1, 2, 75, 74, 60, 59, 95, 4, 3]
    for index in order:
        np.testing.assert_array_equal(video[index], reference[index], f"frame {index}")


def test_backward_and_forward_readers_in_two_threads_get_exact_frames(tmp_path):
    path = _gop_video(tmp_path, 120)
    reference = sequential_decode(path)
    video = VideoFrames(path, cache_bytes=8 * FRAME_BYTES, window_bytes=12 * FRAME_BYTES)

    def wrong(indices) -> list[int]:
        return [i for i in indices if not np.array_equal(video[i], reference[i])]

    with ThreadPoolExecutor(2) as pool:
        backward = pool.submit(wrong, range(119, -1, -1))
        forward = pool.submit(wrong, range(120))
        assert backward.result() == [] and forward.result() == []


def test_a_backward_propagation_reads_the_video_through_the_window(random_model, tmp_path):
    from napari_sam2_track.engine import TrackingSession

    path = _gop_video(tmp_path, 16)
    frames = VideoFrames(path, window_bytes=5 * FRAME_BYTES)
    session = TrackingSession(frames, random_model)
    session.set_prompt(15, 1, points=[(48.0, 32.0)], labels=[1])
    assert [f for f, _ in session.propagate("backward")] == list(range(15, -1, -1))
    # One seek for the prompted frame, then passes of up to 5 frames; not a seek a step.
    assert frames.decoder_starts <= 1 + 15 // 5 + 1
