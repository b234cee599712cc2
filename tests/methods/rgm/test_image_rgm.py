"""RGMModule on images: the tiny NCSN++ generator, the tiny time-conditioned discriminator and the RGM-SR chain train
3 iterations with a real Lightning Trainer (finite losses, lazy R1, every network moves), sample Alg. 3 with NFE = N
into [0, 1]; and the refusals when the config is built or at the first batch."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from dirac.chains import NaiveSRChain, SRChain, VPChain
from dirac.methods.rgm import RGMModule
from dirac.nets import NCSNppGenerator, TimeDiscriminator, ToyDiscriminator, ToyGenerator
from dirac.priors import DSWDPrior, KLDPrior, MMDPrior

ADAM = partial(torch.optim.Adam, lr=1e-3, betas=(0.5, 0.9))


pytestmark = pytest.mark.usefixtures("one_thread")


def generator() -> NCSNppGenerator:
    return NCSNppGenerator(3, 16, 16, (1, 2), 1, (), nz=8, z_emb=32, n_mlp=1)


def discriminator() -> TimeDiscriminator:
    return TimeDiscriminator(3, 16, 8, (2, 4), 4, 32)


def image_module(prior=None, chain=None, **kwargs) -> RGMModule:
    prior = KLDPrior() if prior is None else prior
    options = dict(discriminator=discriminator(), optimizer_d=ADAM, optimizer_projection=ADAM, ema_decay=0.5,
                   lazy_reg=2)
    return RGMModule(generator(), SRChain(7) if chain is None else chain, prior, ADAM, **{**options, **kwargs})


def images(count: int = 8) -> DataLoader:
    data = [{"image": torch.rand(3, 16, 16), "name": str(i)} for i in range(count)]
    return DataLoader(data, batch_size=4)


def trainer(steps: int = 3) -> L.Trainer:
    return L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, accelerator="cpu", devices=1, log_every_n_steps=1)


def snapshot(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def test_three_iterations_on_images_with_the_sr_chain_train_every_network():
    L.seed_everything(0)
    rgm = image_module()
    g, d = snapshot(rgm.generator), snapshot(rgm.discriminator)
    fit = trainer()
    fit.fit(rgm, train_dataloaders=images())
    assert fit.global_step == 3
    losses = {key: float(value) for key, value in fit.callback_metrics.items()}
    assert {"train/loss", "train/loss_d", "train/prior", "train/fidelity"} <= set(losses)
    assert all(torch.isfinite(torch.tensor(value)) for value in losses.values()), losses
    assert any(not torch.equal(a, b) for a, b in zip(g, rgm.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d, rgm.discriminator.parameters()))
    calls = []
    rgm.generator_ema.register_forward_hook(lambda net, args, out: calls.append(int(args[2][0])))
    samples = rgm.sample(2, torch.Generator().manual_seed(0))
    assert calls == list(range(7, 0, -1)) and samples.shape == (2, 3, 16, 16)
    assert samples.min() >= 0 and samples.max() <= 1


def test_dswd_on_features_takes_the_discriminator_width():
    rgm = image_module(DSWDPrior(dim=None, projections=16, inner_steps=2, on_features=True), NaiveSRChain(3))
    assert rgm.prior.dim == rgm.discriminator.feature_dim == 512
    fit = trainer(1)
    fit.fit(rgm, train_dataloaders=images(4))
    assert torch.isfinite(fit.callback_metrics["train/loss"])
    with pytest.raises(ValueError, match="feature width 512"):
        image_module(DSWDPrior(dim=64, on_features=True))
    with pytest.raises(ValueError, match="flattened sample width 768"):
        image_module(DSWDPrior(dim=2))


class NoFeatures(nn.Module):
    sample_shape = (3, 16, 16)

    def forward(self, x_prev, x_k, k):
        return x_prev.mean(dim=(1, 2, 3))


def test_refusals_when_the_config_is_built():
    for chain in (SRChain(7), NaiveSRChain(3)):
        with pytest.raises(ValueError, match=f"algorithm=posterior.*{type(chain).__name__} has none"):
            image_module(chain=chain, algorithm="posterior")
    for prior in (MMDPrior(on_features=True), DSWDPrior(dim=None, on_features=True)):
        with pytest.raises(ValueError, match="needs a discriminator with features; NoFeatures has none"):
            image_module(prior, discriminator=NoFeatures())
    with pytest.raises(ValueError, match="judges"):
        image_module(discriminator=ToyDiscriminator())
    with pytest.raises(ValueError, match="divisible by 8"):
        RGMModule(NCSNppGenerator(3, 12, 16, (1, 2), 1, (), nz=8, z_emb=32, n_mlp=1), SRChain(7), None, ADAM)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        RGMModule(ToyGenerator(), SRChain(7), None, ADAM)


def test_data_that_the_generator_does_not_make_is_refused_at_the_first_batch():
    with pytest.raises(ValueError, match=r"image batches \(batch, 3, 16, 16\).*got \(4, 2\)"):
        trainer(1).fit(image_module(MMDPrior()), train_dataloaders=DataLoader(torch.randn(8, 2), batch_size=4))
    toy = RGMModule(ToyGenerator(nz=8), VPChain(4), MMDPrior(), ADAM)
    with pytest.raises(ValueError, match=r"\(batch, 2\) points.*got \(4, 3, 16, 16\)"):
        trainer(1).fit(toy, train_dataloaders=images(4))
