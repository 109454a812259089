import subprocess
import sys

import pytest

from octopi_core.exceptions import OctopiError, UnknownParticleClassError
from octopi_core.model_config import ModelConfig, check_model_classes


def test_requested_classes_become_canonical_sorted_names():
    config = ModelConfig(version="v1")
    assert check_model_classes(config, None) is None
    assert check_model_classes(config, ["Ribosome", "80s_ribosome", "apo-ferritin"]) == [
        "apo-ferritin",
        "ribosome",
    ]


def test_a_class_the_model_does_not_pick_is_a_named_error():
    config = ModelConfig(version="v1", classes=("ribosome", "apo-ferritin"))
    with pytest.raises(UnknownParticleClassError, match="model v1 does not pick thyroglobulin; it picks"):
        check_model_classes(config, ["ribosome", "thyroglobulin"])
    # Callers that caught the unnamed ValueError, and those catching OctopiError, both still do.
    assert issubclass(UnknownParticleClassError, ValueError) and issubclass(
        UnknownParticleClassError, OctopiError
    )


def test_a_name_that_is_no_particle_class_is_a_value_error():
    with pytest.raises(ValueError, match="unknown particle class 'spaceship'") as caught:
        check_model_classes(ModelConfig(), ["spaceship"])
    assert not isinstance(caught.value, UnknownParticleClassError)


def test_the_check_is_torch_free():
    code = "import sys, octopi_core.model_config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
