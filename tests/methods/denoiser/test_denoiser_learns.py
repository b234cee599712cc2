"""A tiny EDM denoiser trained for real beats the noisy input at every tested sigma (Karras et al. 2022, eq. 7-8);
the module's loss, validation seeding, precision, finiteness check and signature."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from dirac.data import EmbeddedSource, ImageDataModule
from dirac.denoisers import EDMDenoiser
from dirac.methods.denoiser import DenoiserModule
from dirac.nets import NCSNpp
from dirac.tasks.denoising import DenoisingTask


pytestmark = pytest.mark.usefixtures("one_thread")


class LossHistory(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def tiny_module(lr: float = 2e-3) -> DenoiserModule:
    net = NCSNpp(3, 3, 16, model_channels=16, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(), dropout=0.0)
    return DenoiserModule(net, partial(torch.optim.Adam, lr=lr))


def trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kwargs)


@pytest.fixture(scope="module")
def trained():
    """400 real training steps of a tiny denoiser on 16 px embedded photographs (about 25 s on 2 CPU cores)."""
    L.seed_everything(0)
    data = ImageDataModule(partial(EmbeddedSource, downscale=4.0), image_size=16, batch_size=16, eval_batch_size=64,
                           seed=0)
    module, history = tiny_module(), LossHistory()
    trainer(max_steps=400, limit_val_batches=0, callbacks=[history]).fit(module, datamodule=data)
    return module.eval(), data, history.losses


def test_trained_denoiser_beats_the_noisy_input_at_every_sigma(trained, tmp_path):
    """EDM preconditioning alone (c_skip shrinks towards grey) already beats the noisy input at large sigma, so the
    trained model must also clearly beat the same network untrained (measured: +6.1..+9.0 dB over the noisy input,
    +3..+6 dB over the untrained model)."""
    module, data, losses = trained
    assert sum(losses[-20:]) < 0.7 * sum(losses[:20]), f"loss did not fall: {losses[:20]} -> {losses[-20:]}"
    assert isinstance(module.denoiser, EDMDenoiser)
    sigmas = [0.1, 0.2, 0.5, 1.0]
    results = DenoisingTask(sigmas).evaluate(module, trainer(), data, tmp_path / "trained")
    L.seed_everything(0)
    untrained = DenoisingTask(sigmas).evaluate(tiny_module().eval(), trainer(), data, tmp_path / "untrained")
    for sigma in sigmas:
        row, before = results[f"sigma={sigma:g}"], untrained[f"sigma={sigma:g}"]
        assert row["psnr"] > row["psnr_noisy"] + 3.0, (sigma, row)
        assert row["psnr"] > before["psnr"] + 1.5, (sigma, row, before)
        assert row["mse"] < row["mse_noisy"] and row["psnr_noisy"] == before["psnr_noisy"]


def test_loss_is_the_weighted_edm_objective_in_float32_under_bf16_autocast(trained):
    module, data, _ = trained
    x0 = torch.rand(4, 3, 16, 16)
    sigma, noise = torch.tensor([0.02, 0.1, 0.5, 2.0]), torch.randn(4, 3, 16, 16)
    loss = module.edm_loss(x0, sigma, noise)
    assert loss.shape == (4,) and loss.dtype == torch.float32
    torch.testing.assert_close(loss, module.denoiser.loss(x0, sigma, noise))  # the denoisers' reference eq. 8
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = module.edm_loss(x0, sigma, noise)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, loss, rtol=0.1, atol=0.0)  # bf16 network only: close, not equal
    assert not torch.equal(mixed, loss)  # the network did run in bf16


def test_validation_noise_is_seeded_per_image_not_per_batch(trained):
    module, _, _ = trained
    x0 = torch.rand(4, 3, 16, 16)
    names = ["a", "b", "c", "d"]
    sigma, noise = module.validation_noise(x0, names)
    sigma_2, noise_2 = module.validation_noise(x0[2:], names[2:])
    torch.testing.assert_close(sigma[2:], sigma_2, rtol=0, atol=0)
    torch.testing.assert_close(noise[2:], noise_2, rtol=0, atol=0)
    assert len(set(sigma.tolist())) == 4  # log-normal draws differ between images


def test_validation_logs_the_loss(trained):
    module, data, _ = trained
    logged = trainer(limit_val_batches=2).validate(module, datamodule=data, verbose=False)
    assert 0 < logged[0]["val/loss"] < 10


def test_a_non_finite_loss_stops_training():
    images = [{"image": torch.full((3, 16, 16), float("nan")), "name": f"nan_{i}"} for i in range(8)]
    with pytest.raises(FloatingPointError, match="training loss became nan"):
        trainer(max_steps=3, log_every_n_steps=1).fit(tiny_module(), train_dataloaders=DataLoader(images, batch_size=4))


def test_signature_names_geometry_range_and_preconditioning():
    signature = tiny_module().signature()
    assert signature["data"] == {"image_size": 16, "channels": 3, "range": [0.0, 1.0]}
    assert signature["denoiser"]["preconditioning"] == "edm" and signature["denoiser"]["sigma_data"] == 0.5
    assert DenoiserModule.family == "denoiser"


def test_a_learning_rate_schedule_is_stepped_every_training_step():
    """`scheduler` (e.g. denoiser_embedded_long's one-cycle) is stepped per optimiser step: after 5 steps of a
    10-step one-cycle the rate is at OneCycleLR's own value for step 5, not the initial max_lr / div_factor."""
    L.seed_everything(0)
    net = NCSNpp(3, 3, 16, model_channels=16, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(), dropout=0.0)
    one_cycle = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1e-3, total_steps=10)
    module = DenoiserModule(net, partial(torch.optim.Adam, lr=1e-3), scheduler=one_cycle)
    data = ImageDataModule(partial(EmbeddedSource, downscale=4.0), image_size=16, batch_size=4, seed=0)
    trainer(max_steps=5, limit_val_batches=0).fit(module, datamodule=data)
    expected = torch.optim.lr_scheduler.OneCycleLR(torch.optim.Adam([torch.zeros(1)], lr=1e-3), max_lr=1e-3,
                                                   total_steps=10)
    for _ in range(5):
        expected.optimizer.step()
        expected.step()
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(expected.get_last_lr()[0])
    assert expected.get_last_lr()[0] > 1e-3 / 25 * 1.5
