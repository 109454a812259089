"""Tests for octopi_core.device: one rule picks the torch device."""

import pytest
import torch

from octopi_core.device import cpu_has_native_bf16, select_device
from octopi_core.exceptions import OctopiError


@pytest.mark.parametrize("name", [None, "auto"])
def test_auto_is_a_gpu_when_visible_else_the_cpu(name):
    assert select_device(name).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_an_explicit_cpu_is_kept():
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_naming_who_asked():
    with pytest.raises(OctopiError, match="the training config asks for device 'cuda:1', but no CUDA GPU"):
        select_device("cuda:1", asked_by="the training config")


@pytest.mark.parametrize(
    "avx512_bf16,amx,native",
    [(True, False, True), (False, True, True), (False, False, False), (None, None, False)],
)
def test_native_bf16_needs_avx512_bf16_or_amx(monkeypatch, avx512_bf16, amx, native):
    for name, value in (("_is_avx512_bf16_supported", avx512_bf16), ("_is_amx_tile_supported", amx)):
        if value is None:  # a torch build without the check
            monkeypatch.delattr(torch.cpu, name, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, name, lambda value=value: value, raising=False)
    assert cpu_has_native_bf16() is native
