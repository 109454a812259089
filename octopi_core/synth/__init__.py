"""Synthetic cryo-ET tomograms with known particles, for training, tests, demos and benchmarks.

One module per concern: :mod:`.settings` (the ranges drawn from), :mod:`.shapes` (particle and
clutter shapes), :mod:`.render` (drawing objects into a density), :mod:`.imaging` (CTF, missing
wedge, noise, grey levels), :mod:`.phantom` (:func:`make_phantom`, which draws and places
everything) and :mod:`.writing` (:func:`write_phantom`).
"""

from .phantom import Phantom, make_phantom
from .settings import HELD_OUT_SETTINGS, PhantomSettings
from .writing import write_phantom

__all__ = ["PhantomSettings", "Phantom", "make_phantom", "write_phantom", "HELD_OUT_SETTINGS"]
