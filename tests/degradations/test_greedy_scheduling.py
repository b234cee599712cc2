"""Greedy degradation scheduling (paper App. B, Alg. 2; SPEC §1.1) and its CLI."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from dirac.degradations import GaussianBlur, GaussianInpainting, Identity, TabulatedSeverity
from dirac.degradations.scheduling import greedy_schedule, mse_distance
from dirac.schedule import schedule_from_config

REPO = Path(__file__).resolve().parents[2]
SIZE = 32
FREQUENCY = math.pi * 4 / (SIZE - 1)  # a cosine with this frequency is an exact eigenfunction of reflect-padded blur


def cosine_image() -> torch.Tensor:
    """Smooth 1-D data: 0.5 + 0.4 cos(w j) along the columns, constant along the rows."""
    columns = torch.arange(SIZE, dtype=torch.float32)
    return (0.5 + 0.4 * torch.cos(FREQUENCY * columns)).expand(1, 1, SIZE, SIZE).clone()


def blur_at_unit_scale() -> GaussianBlur:
    """Blur with stds 0 -> 3 px at 32 px (reference_size 32), so the whole range is visible."""
    return GaussianBlur(1, SIZE, kernel_size=19, reference_size=SIZE)


def test_greedy_blur_on_a_cosine_spaces_the_attenuation_evenly():
    # MSE(A_a x, A_b x) = 0.16 mean(cos^2) (H(a) - H(b))^2 with H the blur's response at the cosine's frequency,
    # so bisecting in distance halves the H gap: with 2^3 + 1 points, H at the chosen severities is linear in t.
    blur, image = blur_at_unit_scale(), cosine_image()
    result = greedy_schedule(blur, image, mse_distance, budget=9, candidates=256)
    severities = result.severity.c_knots
    wave = image[0, 0] - 0.5
    responses = [((blur.apply_at(image, c[None].float())[0, 0] - 0.5) * wave).sum() / (wave * wave).sum()
                 for c in severities]
    responses = torch.stack(responses)
    normalised = (responses - responses[0]) / (responses[-1] - responses[0])
    torch.testing.assert_close(normalised, torch.linspace(0, 1, 9), atol=0.01, rtol=0)
    # H = exp(-w^2 s^2 / 2) is flat near s = 0: the std rises fast at first (concave in t), unlike the LPIPS schedule.
    assert severities[4] > (0.3 + 3.0) / 2 + 0.3
    assert result.max_distance[-1] == pytest.approx(max(result.distances))


def test_greedy_keeps_endpoints_is_monotone_and_its_largest_step_never_grows():
    blur, image = blur_at_unit_scale(), cosine_image()
    small = greedy_schedule(blur, image, budget=5, candidates=64)
    large = greedy_schedule(blur, image, budget=12, candidates=64)
    for result, budget in ((small, 5), (large, 12)):
        c = result.severity.c_knots
        assert result.severity.endpoints() == (0.3, 3.0) and len(c) == budget
        assert bool((c[1:] > c[:-1]).all())
        torch.testing.assert_close(result.severity.t_knots, torch.linspace(0, 1, budget, dtype=torch.float64))
        assert len(result.max_distance) == budget - 1 and len(result.distances) == budget - 1
        assert all(later <= earlier for earlier, later in zip(result.max_distance, result.max_distance[1:],
                                                              strict=False))
    assert large.max_distance[: len(small.max_distance)] == small.max_distance
    assert set(small.severity.c_knots.tolist()) <= set(large.severity.c_knots.tolist())
    assert large.max_distance[-1] < small.max_distance[-1]


def test_greedy_schedule_loads_back_into_the_degradation():
    images = torch.rand(2, 3, 16, 16)
    result = greedy_schedule(GaussianInpainting(3, 16), images, budget=6, candidates=24)
    assert result.severity.endpoints() == (0.1, 50.0)
    inpainting = GaussianInpainting(3, 16, schedule=result.severity)
    torch.testing.assert_close(inpainting(images, 0.0), images, atol=0, rtol=0)
    torch.testing.assert_close(inpainting(images, 1.0), GaussianInpainting(3, 16)(images, 1.0))


def test_greedy_rejects_bad_budgets_and_ranges():
    images = torch.rand(1, 3, 16, 16)
    inpainting = GaussianInpainting(3, 16)
    with pytest.raises(ValueError, match="budget"):
        greedy_schedule(inpainting, images, budget=20, candidates=10)
    with pytest.raises(ValueError, match="budget"):
        greedy_schedule(inpainting, images, budget=1)
    with pytest.raises(ValueError, match="c_min < c_max"):
        greedy_schedule(inpainting, images, c_min=5.0, c_max=1.0)
    with pytest.raises(ValueError, match="shape"):
        greedy_schedule(inpainting, torch.rand(1, 3, 8, 8))


def schedule_config(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(
            "schedule",
            overrides=["data.image_size=16", "data.source.train=[astronaut]", "images=3", "budget=5", "candidates=16",
                       f"out={tmp_path / 'schedule.txt'}", *overrides],
        )


def test_cli_config_writes_a_schedule_the_blur_loads(tmp_path):
    result = schedule_from_config(schedule_config(tmp_path))
    loaded = TabulatedSeverity.from_file(tmp_path / "schedule.txt")
    assert loaded.signature() == result.severity.signature() and loaded.endpoints() == (0.3, 3.0)
    GaussianBlur(3, 16, schedule=str(tmp_path / "schedule.txt"))


def test_cli_refuses_a_degradation_without_severity(tmp_path):
    with pytest.raises(ValueError, match="Identity has no severity"):
        schedule_from_config(schedule_config(tmp_path, "degradation=denoising"))
    assert Identity(3, 16)  # the denoising family itself is valid


@pytest.mark.slow
def test_cli_entry_point_runs(tmp_path):
    out = tmp_path / "box.txt"
    command = [sys.executable, "-m", "dirac.schedule", "degradation=box_inpainting", "budget=4", "candidates=8",
               "images=2", "data.image_size=16", "data.source.train=[astronaut]", f"out={out}",
               f"hydra.run.dir={tmp_path / 'run'}"]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=300)
    assert TabulatedSeverity.from_file(out).endpoints() == (0.0, 0.5)
