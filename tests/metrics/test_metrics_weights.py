"""Offline pretrained-weight handling: resolution of the weights folder, clear errors, no download attempts."""

from pathlib import Path

import pytest
import torch

from dirac.metrics import MissingWeightsError, load_fid, load_inception, load_lpips, weights_dir
from dirac.metrics.weights import LPIPS_BACKBONES, FrozenNetwork


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything tries to download weights."""
    def refuse(*args, **kwargs):
        raise AssertionError("attempted a download")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_weights_dir_prefers_the_env_var_then_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DIRAC_WEIGHTS_DIR", str(tmp_path / "mine"))
    assert weights_dir() == tmp_path / "mine"
    monkeypatch.delenv("DIRAC_WEIGHTS_DIR")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert weights_dir() == tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize("net, file", [("vgg", "vgg16-397923af.pth"), ("alex", "alexnet-owt-7be5be79.pth")])
def test_load_lpips_without_weights_names_file_and_folder(tmp_path, no_network, net, file):
    with pytest.raises(MissingWeightsError) as error:
        load_lpips(net, weights_dir=tmp_path)
    assert error.value.file == file and error.value.directory == tmp_path
    assert file in str(error.value) and str(tmp_path) in str(error.value) and "https://" in str(error.value)


def test_fid_without_weights_names_the_inception_file(monkeypatch, tmp_path, no_network):
    monkeypatch.setenv("DIRAC_WEIGHTS_DIR", str(tmp_path))
    for loader in (load_fid, load_inception):
        with pytest.raises(MissingWeightsError, match="weights-inception-2015-12-05-6726825d.pth"):
            loader()


def test_unknown_lpips_net_is_rejected():
    with pytest.raises(ValueError, match="LPIPS net"):
        load_lpips("squeeze")


def test_frozen_network_follows_moves_but_stays_out_of_checkpoints():
    frozen = FrozenNetwork(torch.nn.Linear(3, 2), num_features=2)
    assert frozen.state_dict() == {} and list(frozen.parameters()) == []
    frozen.to(torch.float64)
    assert frozen.net.weight.dtype == torch.float64 and not frozen.net.weight.requires_grad
    assert frozen(torch.ones(1, 3, dtype=torch.float64)).shape == (1, 2)


def _weights_or_skip(file: str) -> Path:
    """Skip unless the real weight file is in the weights folder."""
    if not (weights_dir() / file).is_file():
        pytest.skip(f"{file} not in {weights_dir()}")
    return weights_dir() / file


@pytest.mark.requires_weights
@pytest.mark.parametrize("net", sorted(LPIPS_BACKBONES))
def test_real_lpips_is_zero_for_identical_images_and_grows_with_noise(net):
    _weights_or_skip(LPIPS_BACKBONES[net].file)
    model = load_lpips(net)
    x = torch.rand(2, 3, 64, 64)
    distances = [model(x, (x + s * torch.randn_like(x)).clamp(0, 1), normalize=True).flatten() for s in (0, 0.05, 0.2)]
    assert torch.allclose(distances[0], torch.zeros(2), atol=1e-6)
    assert (distances[1] < distances[2]).all()


@pytest.mark.requires_weights
def test_real_fid_is_small_for_identical_sets():
    _weights_or_skip("weights-inception-2015-12-05-6726825d.pth")
    fid = load_fid()
    images = (torch.rand(8, 3, 64, 64) * 255).to(torch.uint8)
    fid.update(images, real=True)
    fid.update(images, real=False)
    assert abs(float(fid.compute())) < 1e-2
