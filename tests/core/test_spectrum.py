"""Spectrum matching: radial power spectra, and bringing a tomogram's spectrum to a model's training data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import ndimage

from octopi_core.exceptions import NoInputSpectrumError
from octopi_core.io import match_spectrum, median_log_power, normalize_volume, radial_log_power
from octopi_core.io.spectrum import MAX_GAIN, SPECTRUM_SHELLS
from octopi_core.options import PredictOptions
from octopi_core.pipeline import Picker


def _noise(shape, seed=0) -> np.ndarray:
    return normalize_volume(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _blurred(shape, sigma, seed=1) -> np.ndarray:
    return normalize_volume(ndimage.gaussian_filter(_noise(shape, seed), sigma).astype(np.float32))


def test_white_noise_has_a_flat_spectrum_at_any_size():
    small, large = radial_log_power(_noise((32, 48, 48))), radial_log_power(_noise((48, 96, 80), seed=2))
    assert small.shape == (SPECTRUM_SHELLS,)
    # flat, and the same for another size (the lowest shells hold few coefficients: noisy estimates)
    assert np.ptp(large[12:]) < 0.3
    assert np.abs(small[12:] - large[12:]).max() < 0.3


def test_a_blurred_volume_gets_the_references_spectrum_back():
    reference = median_log_power([_noise((40, 64, 64)), _noise((40, 64, 64), seed=3)])
    blurred = _blurred((40, 64, 64), sigma=0.6)
    before = radial_log_power(blurred) - np.asarray(reference)
    assert np.ptp(before[1:]) > 2.0  # the high frequencies are damped against the low ones

    matched = match_spectrum(blurred, reference)

    assert matched.dtype == np.float32 and matched.shape == blurred.shape
    after = radial_log_power(matched) - np.asarray(reference)
    assert np.abs(after[1:] - np.median(after[1:])).max() < 0.15  # the same shape up to a constant
    assert abs(float(np.median(matched))) < 0.05  # normalised again


def test_a_volume_with_the_reference_spectrum_is_left_as_it_was():
    volume = _blurred((32, 64, 64), sigma=1.0)
    matched = match_spectrum(volume, tuple(radial_log_power(volume)))
    assert np.corrcoef(volume.ravel(), matched.ravel())[0, 1] > 0.999


def test_no_shell_is_raised_or_lowered_by_more_than_the_gain_limit():
    volume = _blurred((32, 64, 64), sigma=0.5)
    own = radial_log_power(volume)
    far = 3 * np.log(MAX_GAIN)  # asks for MAX_GAIN ** 1.5 in amplitude
    reference = own + np.where(np.arange(SPECTRUM_SHELLS) >= 36, far, 0.0)
    reference[12:20] -= far
    changed = radial_log_power(match_spectrum(volume, tuple(reference))) - own
    relative = changed - np.median(changed[24:34])  # against the shells left alone (renormalisation)
    assert np.allclose(relative[36:], 2 * np.log(MAX_GAIN), atol=0.1)
    assert np.allclose(relative[12:20], -2 * np.log(MAX_GAIN), atol=0.1)


@pytest.mark.parametrize("reference", [(0.0,) * 10, (float("nan"),) * SPECTRUM_SHELLS], ids=["short", "nan"])
def test_a_malformed_reference_is_refused_by_name(reference):
    with pytest.raises(ValueError, match="reference spectrum"):
        match_spectrum(_noise((16, 32, 32)), reference)
    with pytest.raises(ValueError, match="at least one volume"):
        median_log_power([])


def test_predict_matches_the_spectrum_only_when_asked_and_only_with_a_model_that_has_one(
    random_checkpoint, small_tomogram, tmp_path
):
    uri = str(small_tomogram[0])
    without = Picker(random_checkpoint, device="cpu")
    with pytest.raises(NoInputSpectrumError, match=f"model {without.version} has no input spectrum"):
        without.predict(uri, PredictOptions(window_vox=32, match_spectrum=True))

    checkpoint = tmp_path / "with-spectrum"
    shutil.copytree(random_checkpoint, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    flat = (0.0,) * SPECTRUM_SHELLS
    (checkpoint / "config.json").write_text(json.dumps({**config, "input_spectrum": flat}))
    picker = Picker(checkpoint, device="cpu")
    plain = picker.read(uri).volume
    matched = picker.read(uri, PredictOptions(match_spectrum=True)).volume
    assert np.ptp(radial_log_power(matched)[1:]) < 0.5 * np.ptp(radial_log_power(plain)[1:])  # whitened
    document = picker.predict(uri, PredictOptions(window_vox=32, match_spectrum=True))
    assert document.model_version == picker.version
