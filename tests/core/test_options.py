"""Tests for octopi_core.options: the window multiple is the network's, and windows are checked against it."""

import pytest

from octopi_core.model_config import ModelConfig
from octopi_core.options import WINDOW_MULTIPLE_VOX, check_run_name, window_triple


def test_the_window_multiple_is_the_product_of_the_strides():
    assert ModelConfig().window_multiple_vox == WINDOW_MULTIPLE_VOX


def test_windows_must_be_multiples_of_it():
    assert window_triple(WINDOW_MULTIPLE_VOX * 24) == (96, 96, 96)
    with pytest.raises(ValueError, match=f"positive multiples of {WINDOW_MULTIPLE_VOX}"):
        window_triple((96, 96, 98))


@pytest.mark.parametrize("name", ["TS_5_4", "16193", "20240101_TS.001", "a" * 128])
def test_run_names_of_copick_and_the_portal_are_accepted(name):
    assert check_run_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "..", "a b", "a" * 129, None])
def test_run_names_that_cannot_name_a_file_are_refused(name):
    with pytest.raises(ValueError, match="run_name"):
        check_run_name(name)
