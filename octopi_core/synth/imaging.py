"""Imaging: turning a density into a reconstructed-looking tomogram in Fourier space."""

from __future__ import annotations

import numpy as np
import scipy.fft

from .settings import Geometry, Reconstruction

__all__ = ["image_density"]

_ELECTRON_WAVELENGTH_300KV_A = 0.01969
_SPHERICAL_ABERRATION_A = 2.7e7  # 2.7 mm


def _across_tilt_axis(kx: np.ndarray, ky: np.ndarray, drawn: dict) -> np.ndarray:
    """``|k|`` across the tilt axis in the xy plane (the wedge opens along it), broadcast (1, Y, X)."""
    geometry = drawn.get("geometry", Geometry.SINGLE_AXIS_Y.value)
    if geometry == Geometry.ROTATED_AXIS.value:  # axis at tilt_axis_deg from y towards x
        angle = np.radians(drawn["tilt_axis_deg"])
        return np.abs(kx * np.float32(np.cos(angle)) - ky * np.float32(np.sin(angle)))
    if geometry == Geometry.DUAL_AXIS.value:  # a frequency is measured by either series
        return np.maximum(np.abs(kx), np.abs(ky))
    return np.abs(kx)


def image_density(density: np.ndarray, vs: np.ndarray, drawn: dict, rng: np.random.Generator) -> np.ndarray:
    """Turn projected-potential density into a reconstructed-looking tomogram.

    Args:
        density: ``(Z, Y, X)`` float32 density (0 = solvent).
        vs: ``(3,)`` voxel size, zyx Å.
        drawn: the tomogram's drawn imaging values (defocus_um, phase_flipped, bfactor_a2,
            amplitude_contrast, tilt_max_deg, snr, tilt_noise_gain, ice_gradient, inverted,
            grey_offset, grey_scale), as :func:`~octopi_core.synth.make_phantom` draws them;
            other families add reconstruction with lowpass_a (Å) and denoise_factor, and
            geometry with tilt_axis_deg.
        rng: draws the noise and the gradient's direction.

    Returns:
        ``(Z, Y, X)`` float32 grey levels.
    """
    shape = density.shape
    kz = scipy.fft.fftfreq(shape[0], d=vs[0]).astype(np.float32)[:, None, None]
    ky = scipy.fft.fftfreq(shape[1], d=vs[1]).astype(np.float32)[None, :, None]
    kx = scipy.fft.rfftfreq(shape[2], d=vs[2]).astype(np.float32)[None, None, :]
    k2 = kz**2 + ky**2 + kx**2
    lam = _ELECTRON_WAVELENGTH_300KV_A
    chi = (
        np.pi * lam * drawn["defocus_um"] * 1e4 * k2 - 0.5 * np.pi * _SPHERICAL_ABERRATION_A * lam**3 * k2**2
    )
    a = drawn["amplitude_contrast"]
    ctf = -(np.sqrt(1 - a * a) * np.sin(chi) + a * np.cos(chi))
    if drawn["phase_flipped"]:
        ctf = np.abs(ctf)
    envelope = np.exp(-drawn["bfactor_a2"] * k2 / 4)
    # Missing wedge about the tilt axis: frequencies whose direction is steeper than the tilt range.
    tan_max = np.tan(np.radians(drawn["tilt_max_deg"]))
    k_across = _across_tilt_axis(kx, ky, drawn)
    wedge = (np.abs(kz) <= k_across * tan_max + 0.5 / (shape[0] * vs[0])).astype(np.float32)
    transfer = (ctf * envelope * wedge).astype(np.float32)
    reconstruction = drawn.get("reconstruction", Reconstruction.WBP.value)
    if reconstruction != Reconstruction.WBP.value:  # SIRT and denoising both lose high frequencies
        transfer *= np.exp(-0.5 * k2 * drawn["lowpass_a"] ** 2).astype(np.float32)

    spectrum = scipy.fft.rfftn(density, workers=-1)
    spectrum *= transfer
    signal = scipy.fft.irfftn(spectrum, s=shape, workers=-1).astype(np.float32)
    del spectrum
    signal_std = float(signal[density > 0.2].std()) if np.any(density > 0.2) else float(signal.std())

    # Noise measured through the same tilts: inside the wedge only, stronger at high tilt
    # (longer path through the ice), with a mild ramp like weighted back-projection.
    tilt = np.abs(np.arctan2(np.abs(kz), k_across + 1e-12))
    noise_shape = wedge * (1 + drawn["tilt_noise_gain"] * tilt / max(np.radians(drawn["tilt_max_deg"]), 1e-3))
    if reconstruction == Reconstruction.WBP.value:
        noise_shape = noise_shape * (0.3 + np.sqrt(k2) / np.sqrt(k2).max()) * np.exp(-30.0 * k2 / 4)
    elif reconstruction == Reconstruction.SIRT.value:  # no ramp; the same low-pass as the signal
        noise_shape = noise_shape * np.exp(-0.5 * k2 * drawn["lowpass_a"] ** 2)
    else:  # denoised: what noise is left is low-frequency blotches
        noise_shape = noise_shape * np.exp(-0.5 * k2 * (2 * drawn["lowpass_a"]) ** 2)
    white = rng.standard_normal(shape, dtype=np.float32)
    noise_spectrum = scipy.fft.rfftn(white, workers=-1)
    del white
    noise_spectrum *= noise_shape.astype(np.float32)
    noise = scipy.fft.irfftn(noise_spectrum, s=shape, workers=-1).astype(np.float32)
    del noise_spectrum
    noise *= signal_std / max(float(noise.std()), 1e-12) / drawn["snr"]
    if reconstruction == Reconstruction.DENOISED.value:
        noise /= drawn["denoise_factor"]
    signal += noise
    del noise
    if reconstruction == Reconstruction.DENOISED.value:  # compressive grey response, sign kept
        spread = max(float(signal.std()), 1e-12)
        signal = (np.sign(signal) * np.abs(signal / spread) ** 0.7 * spread).astype(np.float32)

    # Smooth ice-thickness gradient across the field of view.
    grad = drawn["ice_gradient"] * signal_std
    zz, yy, xx = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    direction = rng.normal(size=3)
    signal += grad * (
        direction[0] * zz[:, None, None] + direction[1] * yy[None, :, None] + direction[2] * xx[None, None, :]
    )
    if drawn["inverted"]:
        np.negative(signal, out=signal)
    signal *= drawn["grey_scale"]
    signal += drawn["grey_offset"]
    return signal
