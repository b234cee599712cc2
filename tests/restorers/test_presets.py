"""The Hydra sampler presets (SPEC §1.3b): PO stops at 0.25 with std guidance, DO stops automatically."""

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from dirac.restorers import DiracSampler

PRESETS = Path(__file__).resolve().parents[2] / "conf" / "sampler"


def test_po_preset_is_the_celeba_deblur_reference():
    sampler = instantiate(OmegaConf.load(PRESETS / "dirac_po.yaml"))
    assert sampler == DiracSampler(dt=0.02, stop_t=0.25, output="x0_hat", incremental="look_ahead", guidance="std",
                                   guidance_step=0.5, guidance_grid=(0.1, 0.25, 0.5, 1.0, 2.0))
    assert sampler.nfe == 38


def test_do_preset_stops_automatically_with_one_shot_fallback():
    sampler = instantiate(OmegaConf.load(PRESETS / "dirac_do.yaml"))
    assert sampler.auto_stop and sampler.stop_t == 1.0 and sampler.nfe == 1
    assert sampler.with_stop(0.7).nfe == 16
