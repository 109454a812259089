"""Radial power spectra of tomograms, and matching a tomogram's spectrum to a model's training data.

Reconstructions differ in how they weight spatial frequencies: weighted back-projection keeps the high
ones, SIRT-like and denoised reconstructions and binned data damp them, each CTF and B-factor shapes the
band in between. A network learns the weighting of its training data. Matching brings an input's radial
power spectrum to the median one of the model's training tomograms (the model config's ``input_spectrum``)
before inference: each spherical shell of the Fourier transform is scaled by the square root of the power
ratio, within ``MAX_GAIN`` either way, and the volume is normalised again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.fft

from .normalization import normalize_volume

__all__ = ["SPECTRUM_SHELLS", "MAX_GAIN", "radial_log_power", "median_log_power", "match_spectrum"]

SPECTRUM_SHELLS = 48  # shells of equal width from 0 to 0.5 cycles per voxel (corners join the last)
MAX_GAIN = 8.0  # no shell's amplitude is scaled by more than this, or less than its inverse
FIRST_MATCHED_SHELL = 1  # shells below are left as they are
_FFT_WORKERS = -1  # scipy.fft threads: all cores


class _Shells:
    """Shell of every coefficient of the real FFT of a volume of ``shape``, one z-plane at a time, so that
    no volume-sized index or weight array is made (a 184x630x630 tomogram's spectrum alone is 293 MB)."""

    def __init__(self, shape: Sequence[int]) -> None:
        self._fz2 = scipy.fft.fftfreq(shape[0]) ** 2
        fy2 = scipy.fft.fftfreq(shape[1])[:, None] ** 2
        fx2 = scipy.fft.rfftfreq(shape[2])[None, :] ** 2
        self._fyx2 = (fy2 + fx2).astype(np.float32)

    def of_plane(self, z: int) -> np.ndarray:
        radius = np.sqrt(self._fyx2 + np.float32(self._fz2[z]))
        return np.minimum((radius * (2 * SPECTRUM_SHELLS)).astype(np.intp), SPECTRUM_SHELLS - 1).ravel()

    def log_power(self, spectrum: np.ndarray) -> np.ndarray:
        """Log of the mean power per shell; shells without coefficients (a short axis leaves some low ones
        empty) are interpolated from their neighbours."""
        power = np.zeros(SPECTRUM_SHELLS)
        counts = np.zeros(SPECTRUM_SHELLS)
        for z, plane in enumerate(spectrum):
            shells = self.of_plane(z)
            power += np.bincount(
                shells, weights=(plane.real**2 + plane.imag**2).ravel(), minlength=SPECTRUM_SHELLS
            )
            counts += np.bincount(shells, minlength=SPECTRUM_SHELLS)
        filled = counts > 0
        log_power = np.log(np.maximum(power[filled] / counts[filled], 1e-30))
        return np.interp(np.arange(SPECTRUM_SHELLS), np.flatnonzero(filled), log_power)


def radial_log_power(volume: np.ndarray) -> np.ndarray:
    """Natural log of the mean power in each of ``SPECTRUM_SHELLS`` shells (orthonormal FFT, so that
    volumes of any size compare).

    Args:
        volume: ``(Z, Y, X)`` float32, normalised (see :func:`normalize_volume`).
    """
    return _Shells(volume.shape).log_power(scipy.fft.rfftn(volume, norm="ortho", workers=_FFT_WORKERS))


def median_log_power(volumes: Iterable[np.ndarray]) -> tuple[float, ...]:
    """The reference spectrum of normalised volumes (taken one at a time): each shell's median
    :func:`radial_log_power`. The median, because sample content (ice, vesicles, gold, thickness) swings the
    low shells of single tomograms widely."""
    profiles = [radial_log_power(v) for v in volumes]
    if not profiles:
        raise ValueError("a reference spectrum needs at least one volume")
    return tuple(round(float(v), 4) for v in np.median(profiles, axis=0))


def match_spectrum(volume: np.ndarray, reference: Sequence[float], *, name: str = "volume") -> np.ndarray:
    """Bring ``volume``'s radial power spectrum to ``reference``, then normalise it again.

    Args:
        volume: ``(Z, Y, X)`` float32, normalised; replaced, not modified.
        reference: ``SPECTRUM_SHELLS`` log powers, as from :func:`median_log_power`.
        name: how error messages refer to the volume.

    Returns:
        A new float32 volume of the same shape, normalised.

    Raises:
        ValueError: ``reference`` has the wrong length or values that are not finite.
    """
    target = np.asarray(reference, dtype=np.float64)
    finite = bool(np.all(np.isfinite(target)))
    if target.shape != (SPECTRUM_SHELLS,) or not finite:
        raise ValueError(
            f"a reference spectrum has {SPECTRUM_SHELLS} finite values, got {target.size}, "
            f"{'finite' if finite else 'not all finite'}"
        )
    shells = _Shells(volume.shape)
    spectrum = scipy.fft.rfftn(volume, norm="ortho", workers=_FFT_WORKERS)
    gain = np.exp(0.5 * (target - shells.log_power(spectrum)))
    gain[:FIRST_MATCHED_SHELL] = 1.0
    gain = np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN).astype(np.float32)
    for z, plane in enumerate(spectrum):
        plane *= gain[shells.of_plane(z)].reshape(plane.shape)
    matched = scipy.fft.irfftn(spectrum, s=volume.shape, norm="ortho", workers=_FFT_WORKERS)
    return normalize_volume(matched.astype(np.float32, copy=False), name=name)
