"""octopi_core: the shared library of octopi-serve.

Particle classes, the Octopi U-Net and its checkpoints, loss, CZII metric, tomogram readers,
sliding-window inference, localization, exports, synthetic tomograms, training and the model
registry. Heavy modules are imported on first use of their names, so ``import octopi_core`` is cheap.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "PARTICLE_CLASSES": "particles",
    "ParticleClass": "particles",
    "particle_by_name": "particles",
    "PicksDocument": "picks",
    "PickPoint": "picks",
    "ModelConfig": "model_config",
    "build_model": "model",
    "load_checkpoint": "model",
    "save_checkpoint": "model",
    "focal_tversky_loss": "loss",
    "FocalTverskyLoss": "loss",
    "score_picks": "metric",
    "score_documents": "metric",
    "Score": "metric",
    "open_tomogram": "io",
    "load_tomogram": "io",
    "normalize_volume": "io",
    "write_ome_zarr": "io",
    "write_mrc": "io",
    "segment_tomogram": "inference",
    "localize_particles": "localize",
    "PicksFormat": "export",
    "render_picks": "export",
    "write_picks": "export",
    "read_picks": "export",
    "make_phantom": "synth",
    "write_phantom": "synth",
    "PhantomSettings": "synth",
    "Picker": "pipeline",
    "PredictOptions": "options",
    "Stage": "stage",
    "Registry": "registry",
    "train": "train",
    "TrainConfig": "train",
    "promote": "promotion",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'octopi_core' has no attribute {name!r}")
