"""The plots' shared geometry (core/charts.py)."""

from core.charts import HEIGHT, PAD, scale


def test_scale_maps_the_range_onto_the_box_to_a_tenth_of_a_pixel() -> None:
    assert scale(0, 0, 1, PAD, 312) == PAD
    assert scale(1, 0, 1, PAD, 312) == 312
    assert scale(1 / 3, 0, 1, 0, 100) == 33.3
    # y grows downwards in SVG: the top of the range is the top of the box
    assert scale(1, 0, 1, HEIGHT - PAD, 8) == 8


def test_a_range_of_one_value_maps_to_the_middle() -> None:
    assert scale(5, 5, 5, 0, 101) == 50.5
