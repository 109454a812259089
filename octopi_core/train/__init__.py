"""Training: patches centred on particles from generated tomograms, Focal Tversky, EMA, cosine LR.

The loop follows the Octopi model card: patches centred on annotated particles (random
rotations about z, flips, intensity scaling, Gaussian noise), target masks painted as spheres
at a fraction of each class radius, Focal Tversky loss, Adam, an exponential moving average
(EMA) of the weights, cosine-annealed learning rate, validation by sliding-window inference
over whole held-out tomograms scored with the CZII F-beta after localization, early stopping,
and the best checkpoint kept with its scores. Training data are generated on the fly by
:mod:`octopi_core.synth`, a slice of the pool renewed every epoch, so no tomogram is memorised.
Everything is reproducible from the config's seed, and a run resumes from its last state.

Modules: :mod:`.config` (settings, presets), :mod:`.targets` (label maps), :mod:`.sampling` (pool,
patches, batches), :mod:`.loop` (the run), :mod:`.tuning` (validation, localization tuning),
:mod:`.curves` (plots).
"""

from .config import PRESETS, TrainConfig, load_train_config
from .loop import TrainingResult, train
from .targets import paint_targets
from .tuning import tune_checkpoint, tune_localization, validate_model

__all__ = [
    "TrainConfig",
    "load_train_config",
    "paint_targets",
    "train",
    "PRESETS",
    "TrainingResult",
    "validate_model",
    "tune_localization",
    "tune_checkpoint",
]
