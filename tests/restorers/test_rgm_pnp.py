"""RGM-PnP (Alg. 4) and the pseudo-inverse: a tiny untrained 16 px RGM image checkpoint loaded by the safe loader runs
on super-resolution and colorization, the Douglas–Rachford prox step moves towards the data and equals the reference's
at the same λ (its low-resolution operators built here), NFE = M·T′, the refusals, and `experiment=rgm_pnp_sr`
through the real pipeline (mode=test) writes the table with both rows."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from tests.toy_degradations import SmoothMask

from dirac.chains import VPChain
from dirac.checkpoints import save_checkpoint
from dirac.degradations import BlockSuperResolution, Colorization
from dirac.pipeline import model_config, run
from dirac.methods.rgm import load_rgm
from dirac.restorers import PseudoInverse, RGMPnP
from tests.framework.conftest import compose_config

TINY_RGM = ["experiment=cifar10_rgm_kld_d", "data=embedded", "data.image_size=16", "generator=ncsnpp_tiny",
            "discriminator=tiny"]


@pytest.fixture(scope="module")
def rgm_path(tmp_path_factory) -> Path:
    """An untrained tiny 16 px RGM-KLD-D checkpoint written by save_checkpoint."""
    root = tmp_path_factory.mktemp("rgm")
    cfg = compose_config(TINY_RGM, root / "train")
    module = instantiate(cfg.model)
    module.run_config = model_config(cfg)
    GlobalHydra.instance().clear()
    return save_checkpoint(module, root / "rgm.ckpt")


pytestmark = pytest.mark.usefixtures("one_thread")


def measured(degradation, count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = torch.rand(count, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return x0, degradation.apply(x0, torch.ones(count))


@pytest.mark.parametrize("degradation", [BlockSuperResolution(3, 16, factor=2), Colorization(3, 16)])
def test_rgm_pnp_runs_from_a_saved_checkpoint_and_the_prox_step_moves_towards_the_data(rgm_path, degradation):
    restorer = RGMPnP(rgm=partial(load_rgm, rgm_path), lam=5.0, alpha=0.5, iterations=2, t_prime=2)
    restorer.prepare(degradation)
    x0, y = measured(degradation)
    seen = []
    generators = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    out = restorer(y, degradation, generators(), callback=lambda step: seen.append(step.index))
    assert out.shape == y.shape and torch.isfinite(out).all() and seen == [0, 1] and restorer.nfe == 4
    assert torch.equal(out, restorer(y, degradation, generators()))  # per-image generators: reproducible
    operator = degradation.operator(torch.ones(1))
    target = 2 * y - operator.A(torch.ones_like(y))
    v = torch.randn_like(y)
    u = operator.prox_l2(v, target, restorer.lam)
    assert (operator.A(u) - target).norm() < 0.5 * (operator.A(v) - target).norm()
    pinv = PseudoInverse()(y, degradation)
    assert torch.allclose(operator.A(pinv), y, atol=1e-5) and PseudoInverse().nfe == 0


REFERENCE_OPERATORS = {  # rgm.md §7: the measurement at the low resolution
    "sr x2": (BlockSuperResolution(3, 16, factor=2), lambda x: F.avg_pool2d(x, 2)),  # H Hᵀ = I/4
    "sr x4": (BlockSuperResolution(3, 16, factor=4), lambda x: F.avg_pool2d(x, 4)),  # H Hᵀ = I/16
    "colorization": (Colorization(3, 16), lambda x: x.mean(dim=1, keepdim=True)),  # singular value 1/√3
}


def reference_prox(H, v: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """argmin_x λ/2 ‖H x − y‖² + ½ ‖x − v‖² per image, by a dense float64 solve of (I + λ HᵀH) x = v + λ Hᵀ y."""
    shape = v.shape[1:]
    dense = torch.autograd.functional.jacobian(lambda x: H(x.view(1, *shape)).flatten(), torch.zeros(shape.numel()))
    matrix = torch.eye(shape.numel(), dtype=torch.float64) + lam * dense.T.double() @ dense.double()
    rhs = v.flatten(1).double() + lam * y.flatten(1).double() @ dense.double()
    return torch.linalg.solve(matrix, rhs.T).T.view_as(v).float()


@pytest.mark.parametrize("name", sorted(REFERENCE_OPERATORS))
@pytest.mark.parametrize("lam", [0.2, 5.0])
def test_the_douglas_rachford_step_takes_the_references_data_prox_at_the_same_lambda(name, lam):
    degradation, H = REFERENCE_OPERATORS[name]
    restorer, alpha = RGMPnP(lam=lam, alpha=0.5), 0.5
    x0, y = measured(degradation)
    operator = degradation.operator(torch.ones(1))
    torch.manual_seed(1)
    x, restored = torch.randn_like(y), torch.randn_like(y)  # the iterate, and G's restoration (a stand-in)
    step = restorer.split(x, lambda *_: restored, VPChain(4), operator, 2 * y - operator.A(torch.ones_like(y)), 1,
                          torch.zeros(2, 4), [torch.Generator().manual_seed(i) for i in range(2)])
    w = (1 - alpha) * x + alpha * restored
    expected = x + reference_prox(H, 2 * w - x, H(2 * x0 - 1), lam) - w  # y_ref = H(2 x0 − 1) in the model's scale
    torch.testing.assert_close(step, expected, atol=2e-5, rtol=0)


def test_missing_or_wrong_priors_are_refused_with_the_experiment_that_trains_one(rgm_path):
    sr = BlockSuperResolution(3, 16, factor=2)
    with pytest.raises(FileNotFoundError, match="experiment=cifar10_rgm_kld_d"):
        RGMPnP(rgm=partial(load_rgm, None)).prepare(sr)
    with pytest.raises(FileNotFoundError, match="experiment=cifar10_rgm_kld_d"):
        load_rgm("/nowhere/rgm.ckpt")
    with pytest.raises(ValueError, match=r"makes \(3, 16, 16\) images but the task measures \(3, 32, 32\)"):
        RGMPnP(rgm=partial(load_rgm, rgm_path)).prepare(BlockSuperResolution(3, 32, factor=2))
    with pytest.raises(ValueError, match="t_prime=5, but the RGM chain has 4 levels"):
        RGMPnP(rgm=partial(load_rgm, rgm_path), t_prime=5).prepare(sr)
    with pytest.raises(ValueError, match="through the operator's SVD, but the SmoothMask"):
        RGMPnP(rgm=partial(load_rgm, rgm_path)).prepare(SmoothMask(3, 16))
    with pytest.raises(ValueError, match="0 < alpha <= 1"):
        RGMPnP(alpha=0.0)


def test_rgm_pnp_sr_evaluates_a_checkpoint_through_the_pipeline(rgm_path, tmp_path):
    overrides = [*TINY_RGM[1:], "experiment=rgm_pnp_sr", "logger=csv", "metrics=offline", "data.eval_batch_size=4",
                 "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false", "task.save_images=2",
                 "task.baselines.rgm_pnp.iterations=2", "metrics.swd_patches_per_image=8"]
    try:
        with pytest.raises(ValueError, match="experiment=cifar10_rgm_kld_d` trains one"):
            run(compose_config(overrides, tmp_path / "missing"))
        outcome = run(compose_config([*overrides, f"ckpt_path={rgm_path}"], tmp_path / "run"))
    finally:
        GlobalHydra.instance().clear()
    results = outcome["results"]
    assert {"measurement", "pinv", "rgm_pnp"} <= set(results) and results["rgm_pnp"]["nfe"] == 2
    table = (tmp_path / "run" / "results.md").read_text()
    assert results["pinv"]["psnr"] > 0 and "| rgm_pnp |" in table and "rgm_pnp lam: 0.200" in table
