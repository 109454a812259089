import json

import pytest
import torch
import yaml

from octopi_core.exceptions import CheckpointError
from octopi_core.model import (
    build_model,
    count_parameters,
    for_inference,
    load_checkpoint,
    load_octopi_checkpoint,
    save_checkpoint,
)
from octopi_core.model_config import CONFIG_FILE, WEIGHTS_FILE, ModelConfig


def test_card_architecture_has_exactly_the_published_parameter_count():
    assert count_parameters(build_model()) == 5_029_192


def test_output_has_seven_classes_and_input_shape():
    model = build_model().eval()
    with torch.inference_mode():
        out = model(torch.zeros(1, 1, 32, 32, 32))
    assert out.shape == (1, 7, 32, 32, 32)
    assert ModelConfig().window_multiple_vox == 4


def _transposed(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose3d)]


def test_the_inference_network_computes_the_same_function_with_plain_convolutions():
    torch.manual_seed(0)
    model = build_model().eval()
    x = torch.randn(2, 1, 32, 40, 36)
    with torch.inference_mode():
        expected = model(x)
        fast = for_inference(model)
        got = fast(x)
    assert fast is model and count_parameters(fast) == 5_029_192
    # The three stride-1 up-convolutions became plain ones; the two strided ones stay.
    assert [m.stride for m in _transposed(fast)] == [(2, 2, 2), (2, 2, 2)]
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.parametrize("bias", [True, False])
def test_any_plain_stride_1_transposed_convolution_converts_exactly(bias):
    torch.manual_seed(1)
    layer = torch.nn.ConvTranspose3d(3, 5, (3, 1, 5), padding=(1, 0, 2), bias=bias)
    left_alone = [
        torch.nn.ConvTranspose3d(3, 5, 3, stride=2, padding=1, output_padding=1),
        torch.nn.ConvTranspose3d(3, 5, 3, padding=1, dilation=2),
        torch.nn.ConvTranspose3d(3, 5, 3, padding=3),  # wider than the kernel: no plain equivalent
    ]
    network = torch.nn.Sequential(layer, *left_alone)
    x = torch.randn(1, 3, 6, 7, 8)
    with torch.no_grad():
        expected = layer(x)
        for_inference(network)
        converted = network[0]
        got = converted(x)
    assert isinstance(converted, torch.nn.Conv3d) and (converted.bias is not None) == bias
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)
    assert list(network[1:]) == left_alone


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_model().eval()
    saved = save_checkpoint(
        model, ModelConfig(scores={"validation": {"weighted_f_beta": 0.5}}), tmp_path / "ckpt"
    )
    assert saved.version.startswith("octopi-unet-") and len(saved.weights_sha256) == 64
    loaded, config = load_checkpoint(tmp_path / "ckpt")
    assert config.version == saved.version and config.scores["validation"]["weighted_f_beta"] == 0.5
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_same_weights_same_version(tmp_path):
    model = build_model()
    a = save_checkpoint(model, ModelConfig(), tmp_path / "a")
    b = save_checkpoint(model, ModelConfig(), tmp_path / "b")
    assert a.version == b.version


def test_corrupt_weights_are_refused(tmp_path):
    save_checkpoint(build_model(), ModelConfig(), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(tmp_path / "ckpt")


def test_truncated_weights_without_hash_are_refused(tmp_path):
    save_checkpoint(build_model(), ModelConfig(), tmp_path / "ckpt")
    config_path = tmp_path / "ckpt" / CONFIG_FILE
    raw = json.loads(config_path.read_text())
    raw["weights_sha256"] = ""
    config_path.write_text(json.dumps(raw))
    weights = tmp_path / "ckpt" / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "ckpt")


def test_missing_and_invalid_config(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(build_model(), ModelConfig(), tmp_path / "ckpt")
    (tmp_path / "ckpt" / CONFIG_FILE).write_text('{"architecture": "resnet"}')
    with pytest.raises(CheckpointError, match="architecture"):
        load_checkpoint(tmp_path / "ckpt")


def _write_octopi(tmp_path, state):
    torch.save(state, tmp_path / "best_model.pth")
    (tmp_path / "model_config.yaml").write_text(
        yaml.safe_dump(
            {
                "model": {
                    "architecture": "Unet",
                    "num_classes": 7,
                    "channels": [32, 64, 128, 128, 128, 128],
                    "strides": [2, 2, 1, 1, 1],
                    "num_res_units": 1,
                    "dropout": 0.23,
                    "dim_in": 96,
                }
            }
        )
    )


def test_loads_original_octopi_checkpoint(tmp_path):
    torch.manual_seed(1)
    original = build_model().eval()
    _write_octopi(tmp_path, original.state_dict())
    loaded, config = load_checkpoint(tmp_path / "best_model.pth")
    assert config.version == "octopi-import-best_model" and len(config.classes) == 6
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        assert torch.equal(original(x), loaded(x))


class Evil:  # an arbitrary object: weights_only loading must refuse to build it
    pass


def test_octopi_checkpoint_with_pickled_object_is_refused(tmp_path):
    _write_octopi(tmp_path, {"payload": Evil()})
    with pytest.raises(CheckpointError, match="safely"):
        load_octopi_checkpoint(tmp_path / "best_model.pth")


def test_octopi_checkpoint_of_other_architecture_is_refused(tmp_path):
    _write_octopi(tmp_path, {"model.0.conv.unit0.conv.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_octopi_checkpoint(tmp_path / "best_model.pth")
