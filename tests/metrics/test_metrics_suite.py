"""MetricSuite: per-method accumulation, missing-weight behaviour, checkpoint hygiene and Hydra configs."""

import logging
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torchmetrics.image.fid import FrechetInceptionDistance

from dirac.metrics import MetricSuite, data_consistency, mse, psnr, ssim

CONF = Path(__file__).resolve().parents[2] / "conf"


class TinyFeatures(torch.nn.Module):
    """A fixed random feature map of 8-bit RGB images: stands in for Inception in tests."""

    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        self.project = torch.nn.Linear(3 * 4 * 4, self.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 4)
        return self.project(pooled.flatten(1))


@pytest.fixture
def empty_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("DIRAC_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


def _batches():
    """Two batches of targets with noisy outputs, different sizes."""
    targets = [torch.rand(3, 3, 24, 24), torch.rand(2, 3, 24, 24)]
    return [((t + 0.1 * torch.randn_like(t)), t) for t in targets]


def test_missing_weights_warn_once_and_weightless_metrics_still_work(empty_weights, caplog):
    with caplog.at_level(logging.WARNING, logger="dirac.metrics"):
        suite = MetricSuite(lpips_net="vgg", fid=True, swd=True, swd_patches_per_image=16)
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "vgg16-397923af.pth" in message and "weights-inception-2015-12-05-6726825d.pth" in message
    assert str(empty_weights) in message
    assert suite.available == ("psnr", "ssim", "mse", "swd", "data_consistency")
    assert "weights missing" in suite.notes["lpips_net"] and "clipped to [0, 1]" in suite.notes["clipping"]
    for pred, target in _batches():
        suite.update("dirac_po", pred, target)
    results = suite.compute()["dirac_po"]
    assert {"psnr", "ssim", "mse", "swd"} <= set(results) and "lpips" not in results and "fid" not in results
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_per_method_means_fid_and_swd_match_direct_computation(empty_weights):
    features = TinyFeatures()
    suite = MetricSuite(lpips_net=None, fid_features=features, swd_patches_per_image=16)
    batches = _batches()
    for pred, target in batches:
        suite.update("dirac_do", pred, target, measured_pred=pred * 0.5, measurement=target * 0.5)
        suite.update("identity", target, target)
        suite.update("dark", target * 0.5, target)
    preds, targets = (torch.cat(parts) for parts in zip(*batches))
    results = suite.compute()
    assert list(results) == ["dark", "dirac_do", "identity"]
    do = results["dirac_do"]
    assert do["psnr"] == pytest.approx(float(psnr(preds, targets).mean()), rel=1e-5)
    assert do["ssim"] == pytest.approx(float(ssim(preds, targets).mean()), rel=1e-5)
    assert do["mse"] == pytest.approx(float(mse(preds, targets).mean()), rel=1e-5)
    assert do["data_consistency"] == pytest.approx(
        float(data_consistency(preds * 0.5, targets * 0.5).mean()), rel=1e-5)
    reference = FrechetInceptionDistance(feature=features)
    reference.update((targets.clamp(0, 1) * 255).round().to(torch.uint8), real=True)
    reference.update((preds.clamp(0, 1) * 255).round().to(torch.uint8), real=False)
    assert do["fid"] == pytest.approx(float(reference.compute()), rel=1e-4)
    assert 0 < do["swd"] < results["dark"]["swd"]
    identity = results["identity"]
    assert identity["swd"] == 0 and abs(identity["fid"]) < 1e-4 and "data_consistency" not in identity
    assert suite.available == ("psnr", "ssim", "mse", "fid", "swd", "data_consistency")


def test_suite_keeps_metric_networks_out_of_checkpoints():
    holder = torch.nn.Module()
    holder.metrics = MetricSuite(lpips_net=None, fid_features=TinyFeatures(), swd_patches_per_image=8)
    holder.metrics.update("a", torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    assert holder.state_dict() == {} and list(holder.parameters()) == []
    holder.load_state_dict({}, strict=True)


def test_reset_forgets_methods_and_single_images_skip_fid():
    suite = MetricSuite(lpips_net=None, fid_features=TinyFeatures(), swd_patches_per_image=8)
    image = torch.rand(1, 3, 16, 16)
    suite.update("one", image, image)
    assert "fid" not in suite.compute()["one"]
    suite.reset()
    assert suite.compute() == {}


def test_bad_input_is_rejected():
    suite = MetricSuite(lpips_net=None, fid=False, swd=False)
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="method names"):
        suite.update("dirac.po", x, x)
    with pytest.raises(ValueError, match="both measured_pred"):
        suite.update("po", x, x, measured_pred=x)
    with pytest.raises(ValueError, match="same shape"):
        suite.update("po", x, x[:1])


@pytest.mark.parametrize("name, lpips, warns", [("default", "alex", True), ("paper", "vgg", True),
                                                ("offline", "off", False)])
def test_hydra_configs_build_suite_factories(empty_weights, caplog, name, lpips, warns):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(overrides=[f"+metrics={name}"])
    with caplog.at_level(logging.WARNING, logger="dirac.metrics"):
        suite = instantiate(cfg.metrics)()
    assert isinstance(suite, MetricSuite) and "swd" in suite.available
    assert suite.notes["lpips_net"].startswith(lpips)
    assert bool(caplog.records) == warns


def _sharded_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Six noisy outputs and their targets, the same in every process."""
    generator = torch.Generator().manual_seed(1)
    targets = torch.rand(6, 3, 24, 24, generator=generator)
    return targets + 0.1 * torch.randn(targets.shape, generator=generator), targets


def _suite() -> MetricSuite:
    """A suite with the same tiny FID features in every process and a patch cap that forces subsampling."""
    torch.manual_seed(0)
    return MetricSuite(lpips_net=None, fid_features=TinyFeatures(), swd_patches_per_image=16, swd_max_patches=40)


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One DDP rank: accumulate its shard, compute (synchronised) and save the results."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    preds, targets = _sharded_data()
    suite = _suite()
    suite.update("po", preds[rank::world], targets[rank::world])
    torch.save(suite.compute(), Path(out_dir) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_results_under_ddp_match_one_process(tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)["po"] for rank in range(2)]
    single = _suite()
    single.update("po", *_sharded_data())
    expected = single.compute()["po"]
    assert ranks[0] == ranks[1]
    for metric in ("psnr", "ssim", "mse", "fid"):
        assert ranks[0][metric] == pytest.approx(expected[metric], rel=1e-5)
    assert ranks[0]["swd"] > 0
