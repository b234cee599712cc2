"""Loading a pretrained diffusers UNet2DModel + DDPMScheduler from a local directory
(saved here with save_pretrained)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dirac.denoisers import GaussianDenoiser, VPDenoiser
from dirac.denoisers.diffusers import UNetPrediction, load_diffusers_denoiser

diffusers = pytest.importorskip("diffusers")
CONF = Path(__file__).resolve().parents[2] / "conf" / "denoiser"


def tiny_unet(**overrides):
    config = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                  norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "UpBlock2D"))
    return diffusers.UNet2DModel(**{**config, **overrides})


def save(root, unet, scheduler, layout="pipeline"):
    """Write a model directory: pipeline layout (unet/, scheduler/) or flat (config.json, weights,
    scheduler_config.json)."""
    unet.save_pretrained(root / "unet" if layout == "pipeline" else root)
    scheduler.save_pretrained(root / "scheduler" if layout == "pipeline" else root)
    return root


@pytest.fixture
def saved(tmp_path):
    unet, scheduler = tiny_unet(), diffusers.DDPMScheduler(num_train_timesteps=100)
    return save(tmp_path / "model", unet, scheduler), unet, scheduler


@pytest.mark.parametrize("layout", ["pipeline", "flat"])
def test_loaded_denoiser_equals_the_adapter_of_the_in_memory_model(tmp_path, layout):
    unet, scheduler = tiny_unet(), diffusers.DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")
    root = save(tmp_path / "model", unet, scheduler, layout)
    loaded = load_diffusers_denoiser(root, image_size=16, channels=3)
    reference = VPDenoiser(UNetPrediction(unet.eval(), 3), scheduler.alphas_cumprod)
    x, sigma = torch.rand(3, 3, 16, 16), torch.tensor([0.02, 0.3, 4.0])
    with torch.no_grad():
        out, expected = loaded(x, sigma), reference(x, sigma)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    assert (out - x).abs().max() > 1e-3  # the random UNet does something
    assert not any(p.requires_grad for p in loaded.parameters())


def test_v_prediction_and_learned_variance_models_load(tmp_path):
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=50, prediction_type="v_prediction")
    root = save(tmp_path / "model", tiny_unet(out_channels=6), scheduler)
    loaded = load_diffusers_denoiser(root)
    assert loaded.prediction_type == "v_prediction"
    assert loaded(torch.rand(2, 3, 16, 16), torch.tensor([0.1, 1.0])).shape == (2, 3, 16, 16)


def test_missing_or_incomplete_directories_name_the_expected_files(saved, tmp_path):
    root, _, _ = saved
    with pytest.raises(FileNotFoundError, match="does not exist.*config.json.*scheduler_config.json"):
        load_diffusers_denoiser(tmp_path / "absent")
    (root / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"diffusion_pytorch_model.safetensors or diffusion_pytorch_model.bin"):
        load_diffusers_denoiser(root)


def test_a_malformed_config_or_weight_file_is_a_clear_error(saved):
    root, _, _ = saved
    (root / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot load the diffusers model"):
        load_diffusers_denoiser(root)
    (root / "scheduler" / "scheduler_config.json").write_text("{ not json")
    with pytest.raises(ValueError, match="scheduler_config.json"):
        load_diffusers_denoiser(root)


def edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(("file", "changes", "kwargs", "message"), [
    ("unet/config.json", {"_class_name": "UNet2DConditionModel"}, {}, "needs a diffusers UNet2DModel"),
    ("scheduler/scheduler_config.json", {"prediction_type": "flow"}, {}, "prediction_type 'flow'"),
    ("unet/config.json", {}, {"image_size": 32}, "sample_size is 16, but the data is 32x32"),
    ("unet/config.json", {}, {"channels": 1}, "takes 3 channels, but the data has 1"),
])
def test_incompatible_models_are_value_errors(saved, file, changes, kwargs, message):
    root, _, _ = saved
    edit_json(root / file, **changes)
    with pytest.raises(ValueError, match=message):
        load_diffusers_denoiser(root, **kwargs)


def test_diffusers_is_imported_only_by_the_loader():
    code = "import sys, dirac.denoisers.diffusers, dirac.denoisers; print('diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_missing_diffusers_install_says_how_to_install_it(saved, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ImportError, match=r"pip install -e \.\[diffusers\]"):
        load_diffusers_denoiser(saved[0])


def test_hydra_configs_instantiate_the_denoisers(saved):
    config = OmegaConf.merge(OmegaConf.load(CONF / "diffusers.yaml"), {"path": str(saved[0])})
    assert isinstance(instantiate(config), VPDenoiser)
    with pytest.raises(InstantiationException, match="data is 32x32"):
        instantiate(OmegaConf.merge({"data": {"image_size": 32, "channels": 3}}, {"denoiser": config}).denoiser)
    assert isinstance(instantiate(OmegaConf.load(CONF / "gaussian.yaml")), GaussianDenoiser)
