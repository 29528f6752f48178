"""Prompts CSV files: points, boxes, and both in one file."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.prompt_csv import read_prompts_csv
from napari_sam2_track.prompts import PromptError


def write(tmp_path, text: str):
    path = tmp_path / "prompts.csv"
    path.write_text(text)
    return path


def test_box_rows_give_box_prompts(tmp_path):
    prompts = read_prompts_csv(write(tmp_path, "frame,obj_id,x0,y0,x1,y1\n3,2,10,20,50,60.5\n"))
    assert list(prompts) == [(3, 2)]
    assert prompts[3, 2].box == (10.0, 20.0, 50.0, 60.5)
    assert len(prompts[3, 2].points) == 0


def test_points_and_boxes_in_one_file_combine_per_frame_and_object(tmp_path):
    text = (
        "frame,obj_id,x,y,label,x0,y0,x1,y1\n"
        "0,1,30,40,1,,,,\n"
        "0,1,,,,10,20,50,60\n"
        "0,1,5,5,0,,,,\n"
        "4,2,,,,1,2,3,4\n"
        "\n"
    )
    prompts = read_prompts_csv(write(tmp_path, text))
    assert list(prompts) == [(0, 1), (4, 2)]
    first = prompts[0, 1]
    np.testing.assert_array_equal(first.points, [[30, 40], [5, 5]])
    np.testing.assert_array_equal(first.labels, [1, 0])
    assert first.box == (10, 20, 50, 60)
    assert prompts[4, 2].box == (1, 2, 3, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frame,obj_id,x,y,label,x0,y0,x1,y1\n0,1,3,4,1,1,2,3,4\n", "line 2 gives both a point"),
        ("frame,obj_id,x,y,label,x0,y0,x1,y1\n0,1,,,,,,,\n", "line 2 gives neither"),
        ("frame,obj_id,x0,y0,x1,y1\n0,1,1,2,3,4\n0,1,5,6,7,8\n", "two boxes on frame 0"),
        ("frame,obj_id,x0,y0,x1,y1\n0,0,1,2,3,4\n", "0 is not one"),
        ("frame,obj_id,x0,y0,x1,y1\n0,1,1,2,3,nan\n", "four finite numbers"),
        ("frame,obj_id,x0,y0\n0,1,1,2\n", "needs the columns"),
    ],
)
def test_bad_box_rows_are_one_sentence(tmp_path, text, message):
    with pytest.raises(PromptError, match=message) as refused:
        read_prompts_csv(write(tmp_path, text))
    assert "\n" not in str(refused.value)
