"""Fixtures for the core tests: a small random-weight checkpoint and small generated tomograms."""

import pytest
import torch

from octopi_core.model import build_model, save_checkpoint
from octopi_core.model_config import ModelConfig
from octopi_core.synth import PhantomSettings, make_phantom, write_phantom

SMALL_SETTINGS = PhantomSettings(shape_zyx=(32, 64, 64), particles_per_1e9_a3=(60.0, 80.0))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    # Tests share two cores with other work; one thread keeps them predictable.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory):
    """A checkpoint directory with untrained (seeded) weights."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("ckpt") / "random"
    save_checkpoint(build_model(ModelConfig()).eval(), ModelConfig(), directory)
    return directory


@pytest.fixture(scope="session")
def small_tomogram(tmp_path_factory):
    """``(zarr path, truth path)`` of a 32x64x64 phantom at 10 Å."""
    directory = tmp_path_factory.mktemp("tomo")
    return write_phantom(make_phantom(5, SMALL_SETTINGS), directory, "small")
