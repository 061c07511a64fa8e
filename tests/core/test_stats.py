import pytest

from core.stats import Share


def test_accuracy_states_n_and_its_interval_to_the_precision_of_n():
    assert Share(9, 9).text == "100 % (9/9; 95 % CI 70–100 %, Wilson)"
    assert Share(1234, 2000).text == "61.7 % (1234/2000; 95 % CI 59.5–63.8 %, Wilson)"
    low, high = Share(7, 8).interval
    assert low == pytest.approx(0.5291, abs=1e-4) and high == pytest.approx(0.9776, abs=1e-4)
    assert Share(0, 0).text == "– (n = 0)" and not Share(0, 0).beats_chance


def test_the_closed_form_wilson_interval_the_analytics_used_gives_the_same_bounds():
    # NYU's Table 1 rows (the analytics printed these before core.stats served them).
    low, high = Share(129, 154).interval
    assert (round(low, 4), round(high, 4)) == (0.7713, 0.8876)
