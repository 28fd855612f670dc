import numpy as np

from vfedsim.rng import int_seed, stream


def test_streams_are_reproducible_and_independent_per_entity():
    a = stream(7, "vehicle", 3).random(4)
    assert np.array_equal(a, stream(7, "vehicle", 3).random(4))
    assert not np.array_equal(a, stream(7, "vehicle", 4).random(4))
    assert not np.array_equal(a, stream(7, "device", 3).random(4))
    assert not np.array_equal(a, stream(8, "vehicle", 3).random(4))


def test_int_seed_is_stable_and_non_negative():
    s = int_seed(0, "train", 5, 2)
    assert s == int_seed(0, "train", 5, 2) and 0 <= s < 2**63
    assert s != int_seed(0, "train", 5, 3)
