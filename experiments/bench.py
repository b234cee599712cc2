"""`make bench`: what the framework adds over the networks, each line a ratio to a baseline timed in the same run.

    python experiments/bench.py [--device cpu|cuda] [--quick] [--csv bench.csv] [--only compression ...]

Each measurement is the median of repeated timings (after warm-up; CUDA synchronised around each timing only).
Lines: batched degradations vs the paper code's structure (a loop over the batch rebuilding the kernel or mask per
sample); closed-form adjoints and SVD products vs the autograd adjoint; one Dirac reverse step vs the bare network
forward (and a guided step vs forward + backward); a Lightning training step of each method vs a bare PyTorch loop
doing the same forward/backward/step; RGM sampling (Alg. 3) vs its N generator forwards and an RGM training step
(manual optimisation of G and D) vs a bare loop doing the same G and D updates; RCC encode / decode seconds per image vs
the denoiser calls they need, and
the PFR search's candidates per second vs bare randn + matvec of the same blocks; the quickstart step's split
(degradation, forward, backward, optimiser) as shares of the whole step; memory of a training step (peak on GPU,
parameters + activations on CPU).
Nothing here is a test: the numbers depend on the machine, the ratios much less.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from dirac.degradations import BlockSuperResolution, GaussianBlur, GaussianInpainting
from dirac.degradations.base import Degradation
from dirac.degradations.noise import GeometricNoise
from dirac.chains import VPChain
from dirac.methods.denoiser import DenoiserModule
from dirac.methods.dirac import DiracModule, LookAheadLoss
from dirac.methods.rgm import RGMModule
from dirac.nets import NCSNpp, NCSNppGenerator, TimeDiscriminator
from dirac.priors import KLDPrior
from dirac.priors.kld import discriminator_loss, r1_penalty
from dirac.restorers import DiracSampler

TINY = dict(model_channels=32, channel_mult=(1, 2, 2), num_blocks=1, attn_resolutions=(8,), dropout=0.0)
BASE = dict(model_channels=128, channel_mult=(1, 1, 2, 2, 2, 2, 2), num_blocks=2, attn_resolutions=(16,), dropout=0.1)


@dataclass
class Line:
    """One benchmark line: what was measured, the sizes and device, the time and the baseline's, their ratio."""

    name: str
    setting: str
    seconds: float
    baseline: str
    baseline_seconds: float

    @property
    def ratio(self) -> float:
        """How many times faster (> 1) or slower (< 1) than the baseline: baseline time / time."""
        return self.baseline_seconds / self.seconds

    def row(self) -> dict[str, str]:
        return {"name": self.name, "setting": self.setting, "seconds": f"{self.seconds:.6g}",
                "baseline": self.baseline, "baseline_seconds": f"{self.baseline_seconds:.6g}",
                "speedup": f"{self.ratio:.3f}", "time_over_baseline": f"{1 / self.ratio:.3f}"}


def timed(function: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """The median wall time of `function()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_sample(degradation: Degradation, x: Tensor, t: Tensor) -> Tensor:
    """The reference code's structure: one image at a time, its kernel or mask rebuilt for each."""
    return torch.cat([degradation.apply(x[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])])


def per_sample_2d_blur(blur: GaussianBlur, x: Tensor, t: Tensor) -> Tensor:
    """The reference blur (reference/dirac.md §1.1): per image, the full K x K kernel built from its std, reflect
    padding and one dense depthwise 2-D convolution."""
    outputs = []
    for i in range(x.shape[0]):
        line = blur.kernels(blur.schedule(t[i : i + 1]))[0]
        kernel = torch.outer(line, line).expand(x.shape[1], 1, -1, -1)
        pad = kernel.shape[-1] // 2
        padded = F.pad(x[i : i + 1], (pad, pad, pad, pad), mode="reflect")
        outputs.append(F.conv2d(padded, kernel, groups=x.shape[1]))
    return torch.cat(outputs)


def degradation_lines(device: torch.device, sizes: list[int], batch: int, repeats: int) -> list[Line]:
    """Batched severity-parameterised operators vs the per-sample loop (same output, checked)."""
    lines = []
    for size in sizes:
        families = {"gaussian blur": GaussianBlur(3, size), "gaussian inpainting": GaussianInpainting(3, size),
                    "block super-resolution": BlockSuperResolution(3, size)}
        x = torch.rand(batch, 3, size, size, device=device)
        t = torch.rand(batch, device=device)
        for name, degradation in families.items():
            degradation = degradation.to(device)
            reference = partial(per_sample_2d_blur if name == "gaussian blur" else per_sample, degradation)
            with torch.no_grad():
                torch.testing.assert_close(degradation.apply(x, t), reference(x, t), atol=1e-5, rtol=1e-4)
                fast = timed(lambda: degradation.apply(x, t), device, repeats)
                slow = timed(lambda: reference(x, t), device, repeats)
            what = ("per-sample loop, dense K x K kernel rebuilt per image (paper code)" if name == "gaussian blur"
                    else "per-sample loop rebuilding the mask per image")
            lines.append(Line(f"{name}: batched A_t", f"batch {batch}, {size} px, {device}", fast, what, slow))
    return lines


def operator_lines(device: torch.device, size: int, batch: int, repeats: int) -> list[Line]:
    """Closed-form adjoint and SVD products of the blur and mask operators vs the autograd adjoint (issue 16)."""
    lines = []
    t = torch.full((batch,), 0.7, device=device)
    y = torch.rand(batch, 3, size, size, device=device)
    for name, degradation in {"gaussian blur": GaussianBlur(3, size),
                              "gaussian inpainting": GaussianInpainting(3, size)}.items():
        degradation = degradation.to(device)
        operator = degradation.operator(t)
        autograd = timed(lambda: degradation.adjoint(y, t), device, repeats)
        with torch.no_grad():
            closed = timed(lambda: operator.A_adjoint(y), device, repeats)
            svd = operator.svd()
            products = timed(lambda: svd.U(svd.s * svd.V_T(y)), device, repeats)
        setting = f"batch {batch}, {size} px, {device}"
        lines.append(Line(f"{name}: closed-form A^T", setting, closed, "autograd A^T (VJP)", autograd))
        lines.append(Line(f"{name}: SVD product U s V^T x", setting, products, "autograd A^T (VJP)", autograd))
    return lines


def tiny_dirac(size: int, net: dict, device: torch.device, guidance: str = "none", delta_t: float = 0.0) -> DiracModule:
    """A Dirac module with an NCSN++ of the given settings at `size` px."""
    sampler = DiracSampler(dt=0.5, guidance=guidance, output="iterate")
    return DiracModule(NCSNpp(3, 3, size, **net), GaussianBlur(3, size), GeometricNoise(), LookAheadLoss(delta_t),
                       partial(torch.optim.Adam, lr=1e-4), sampler, sampler).to(device)


def sampler_lines(device: torch.device, size: int, batch: int, net: dict, label: str, repeats: int) -> list[Line]:
    """One Dirac reverse step vs the bare network forward; a guided step vs network forward + backward."""
    lines = []
    y = torch.rand(batch, 3, size, size, device=device)
    t = torch.ones(batch, device=device)
    for guidance in ("none", "std"):
        module = tiny_dirac(size, net, device, guidance).eval()
        step = DiracSampler(dt=1.0, guidance=guidance, output="iterate")  # exactly one full step

        def forward() -> Tensor:
            with torch.no_grad():
                return module.phi(y, t)

        def forward_backward() -> Tensor:  # the gradient in the input alone, as guidance needs
            y_in = y.clone().requires_grad_(True)
            return torch.autograd.grad((module.phi(y_in, t) ** 2).sum(), y_in)[0]

        bare = forward if guidance == "none" else forward_backward
        base_name = "network forward" if guidance == "none" else "network forward + backward"
        reverse = timed(lambda: step(module.phi, y, module.degradation, module.noise), device, repeats)
        lines.append(Line(f"Dirac reverse step ({'guided' if guidance != 'none' else 'no guidance'})",
                          f"{label} NCSN++, batch {batch}, {size} px, {device}", reverse, base_name,
                          timed(bare, device, repeats)))
    return lines


class StepTimer(L.Callback):
    """Wall time between consecutive training batch starts (the time of one optimisation step)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.starts.append(time.perf_counter())


def lightning_step(module: L.LightningModule, loader: DataLoader, steps: int, device: torch.device) -> float:
    """The median time of one Lightning optimisation step (fit with no logging, checkpointing or validation)."""
    timer = StepTimer()
    trainer = L.Trainer(max_steps=steps + 1, accelerator=device.type, devices=1, logger=False, limit_val_batches=0,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer])
    trainer.fit(module, train_dataloaders=loader)
    return statistics.median(b - a for a, b in zip(timer.starts[2:], timer.starts[3:]))


def bare_step(module: L.LightningModule, loss: Callable[[Tensor], Tensor], loader: DataLoader, steps: int,
              device: torch.device) -> float:
    """The median time of the same forward/backward/step in a plain PyTorch loop."""
    optimizer = module.configure_optimizers()
    batches = iter(loader)

    def step() -> None:
        x0 = next(batches)["image"].to(device)
        optimizer.zero_grad(set_to_none=True)
        loss(x0).backward()
        optimizer.step()

    return timed(step, device, steps - 2)


def random_loader(size: int, batch: int, count: int) -> DataLoader:
    """Batches of random images with names, like the DataModules yield."""
    items = [{"image": torch.rand(3, size, size), "name": f"{index}"} for index in range(count)]
    return DataLoader(items, batch_size=batch, shuffle=False)


def training_lines(device: torch.device, size: int, batch: int, steps: int) -> list[Line]:
    """A Lightning optimisation step of each method vs a bare loop doing the same work."""
    loader = random_loader(size, batch, batch * (steps + 4))
    setting = f"tiny NCSN++, batch {batch}, {size} px, {device}"
    lines = []
    dirac = tiny_dirac(size, TINY, device)
    lit = lightning_step(dirac, loader, steps, device)
    bare = bare_step(dirac, lambda x0: dirac.look_ahead_loss(x0, torch.rand(x0.shape[0], device=device)), loader,
                     steps, device)
    lines.append(Line("Dirac training step (Lightning)", setting, lit, "bare PyTorch loop", bare))
    denoiser = DenoiserModule(NCSNpp(3, 3, size, **TINY), partial(torch.optim.Adam, lr=1e-4)).to(device)
    lit = lightning_step(denoiser, loader, steps, device)

    def denoiser_loss(x0: Tensor) -> Tensor:
        sigma = denoiser.denoiser.sample_sigma(x0.shape[0], device=device, dtype=torch.float32)
        return denoiser.edm_loss(x0, sigma, torch.randn_like(x0)).mean()

    lines.append(Line("denoiser training step (Lightning)", setting, lit, "bare PyTorch loop",
                      bare_step(denoiser, denoiser_loss, loader, steps, device)))
    return lines


def tiny_rgm(size: int, device: torch.device) -> RGMModule:
    """RGM-KLD-D (N = 4) with the tiny NCSN++ generator and tiny discriminator of the configs at `size` px."""
    adam = partial(torch.optim.Adam, lr=1e-4, betas=(0.5, 0.9))
    generator = NCSNppGenerator(3, size, 16, (1, 2), 1, (), nz=8, z_emb=32, n_mlp=1)
    return RGMModule(generator, VPChain(4), KLDPrior(), adam, TimeDiscriminator(3, size, 8, (2, 4, 4), 4, 32),
                     adam).to(device)


def bare_rgm_step(rgm: RGMModule, loader: DataLoader, steps: int, device: torch.device) -> float:
    """The median time of the same D step (with lazy R1), G step and EMA update in a plain PyTorch loop."""
    optimizer_g, optimizer_d = rgm.configure_optimizers()
    batches, iterations = iter(loader), itertools.count()

    def step() -> None:
        regularise = next(iterations) % rgm.lazy_reg == 0
        x0 = 2 * next(batches)["image"].to(device) - 1
        k = rgm.levels(x0.shape[0], device)
        x_prev, x_k = rgm.real_pair(x0, k)
        with torch.no_grad():
            fake = rgm.redegrade(rgm.restore(x_k, k), x_k, k)
        x_prev = x_prev.requires_grad_(regularise)
        real_logit = rgm.discriminator(x_prev, x_k, k)
        loss_d = discriminator_loss(real_logit, rgm.discriminator(fake, x_k, k))
        loss_d = loss_d + 0.5 * rgm.r1_gamma * r1_penalty(real_logit, x_prev) if regularise else loss_d
        optimizer_d.zero_grad(set_to_none=True)
        loss_d.backward()
        optimizer_d.step()
        loss_g = rgm.generator_step(x0)[0]
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        rgm.update_ema()

    return timed(step, device, steps - 2)


def rgm_lines(device: torch.device, size: int, batch: int, steps: int, repeats: int) -> list[Line]:
    """RGM sampling (Alg. 3, NFE = N) vs N bare generator forwards on the same batch; a Lightning RGM iteration
    (manual optimisation of D and G, EMA) vs a bare loop doing the same updates."""
    rgm = tiny_rgm(size, device).eval()
    setting = f"tiny NCSN++ generator, batch {batch}, {size} px, {device}"
    x = torch.randn(batch, 3, size, size, device=device)
    z = torch.randn(batch, rgm.nz, device=device)
    k = torch.ones(batch, dtype=torch.long, device=device)

    @torch.no_grad()
    def forwards() -> None:
        for _ in range(rgm.chain.steps):
            rgm.generator_ema(x, z, k)

    generator = torch.Generator(device).manual_seed(0)
    lines = [Line(f"RGM sampling, Alg. 3 (N = {rgm.chain.steps})", setting, timed(lambda: rgm.sample(batch, generator),
                                                                                   device, repeats),
                  f"{rgm.chain.steps} generator forwards", timed(forwards, device, repeats))]
    loader = random_loader(size, batch, batch * (steps + 4))
    lit = lightning_step(tiny_rgm(size, device), loader, steps, device)
    lines.append(Line("RGM training step (Lightning, manual opt.)", setting, lit, "bare PyTorch loop",
                      bare_rgm_step(tiny_rgm(size, device), loader, steps, device)))
    return lines


def step_split_lines(device: torch.device, size: int, batch: int, repeats: int) -> list[Line]:
    """Where the quickstart's training step goes (issue 20 profile): the degradation y_t = A_t(x0) + sigma_t z, the
    network forward, forward + loss + backward, and Adam's update, each against the whole bare step (Δt = 1)."""
    module = tiny_dirac(size, TINY, device, delta_t=1.0)
    optimizer = module.configure_optimizers()
    x0 = torch.rand(batch, 3, size, size, device=device)
    t = torch.rand(batch, device=device)
    y_t = module.degrade(x0, t)

    def backward() -> None:
        optimizer.zero_grad(set_to_none=True)
        module.look_ahead_loss(x0, t).backward()

    def step() -> None:
        backward()
        optimizer.step()

    full = timed(step, device, repeats)
    backward()
    with torch.no_grad():
        parts = {"degradation A_t + noise": timed(lambda: module.degrade(x0, t), device, repeats),
                 "network forward": timed(lambda: module.phi(y_t, t), device, repeats)}
    parts["forward + loss + backward"] = timed(backward, device, repeats)
    parts["Adam update"] = timed(optimizer.step, device, repeats)
    setting = f"quickstart: tiny NCSN++, batch {batch}, {size} px, {device}"
    return [Line(f"step split: {part}", setting, seconds, "the whole bare training step", full)
            for part, seconds in parts.items()]


def compression_lines(device: torch.device, size: int, repeats: int) -> list[Line]:
    """RCC (SPEC §3): encode and decode seconds per image vs the denoiser calls they need, for the .drc format written
    now (3: the chunks of a step share one pool of K rows), format 2 (one K x dims candidate matrix per step) and
    format 1 (one search per chunk) on the same image, and the PFR search's candidates scored per second vs the bare
    randn + matvec of the same candidates in the same run."""
    from dirac.compression import Chunking, Codec, Ladder, pfr_select
    from dirac.denoisers import EDMDenoiser
    from dirac.samplers.pf_ode import score_scaled_pf_ode

    torch.manual_seed(0)
    denoiser = EDMDenoiser(NCSNpp(3, 3, size, **TINY)).to(device).eval()
    prng = "cuda" if device.type == "cuda" else "cpu"
    ladder, ode_steps = Ladder(2.0, 0.05, 8), 8
    x0 = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    x = x0[None]

    def network_calls(count: int) -> Callable[[], object]:
        return lambda: [denoiser(x, x.new_full((1,), 0.5)) for _ in range(count)]

    lines = []
    with torch.no_grad():
        for chunking, version in itertools.product((Chunking(8, 2), Chunking(8, 4)), (1, 2, 3)):
            codec = Codec(denoiser, ladder, chunking, seed=0, prng=prng, version=version)
            encoding = codec.encode(x0)
            # each baseline timed just before its line, so a busy machine slows both alike
            encode_net = timed(network_calls(ladder.levels - 1), device, repeats, warmup=1)
            encode = timed(lambda: codec.encode(x0), device, repeats, warmup=1)
            decode_net = timed(network_calls(ladder.levels - 1 + 2 * ode_steps - 1), device, repeats, warmup=1)
            decode = timed(lambda: score_scaled_pf_ode(denoiser, codec.decode_noisy(encoding.data)[0][None],
                                                       encoding.sigma, 1.0, ode_steps), device, repeats, warmup=1)
            setting = (f"tiny NCSN++, 3x{size}x{size}, {ladder.levels} steps, K=2^{chunking.chunk_kl + chunking.pad}, "
                       f"format {version}, {8 * len(encoding.data) / size**2:.3f} bpp, {device}")
            lines += [Line("RCC encode (seconds / image)", setting, encode, f"its {ladder.levels - 1} denoiser calls",
                           encode_net),
                      Line("RCC decode, PF-ODE (seconds / image)", f"{setting}, {ode_steps} Heun steps", decode,
                           "its denoiser calls", decode_net)]
            if version == 2:  # the floor: every step draws K x dims candidates whatever the search does with them
                draws = timed(lambda: [torch.randn(x0.numel(), chunking.candidates, device=prng)
                                       for _ in range(ladder.levels)], torch.device(prng), repeats, warmup=1)
                lines.append(Line("RCC encode (seconds / image)", setting, encode,
                                  "its denoiser calls + bare randn of its candidates", encode_net + draws))
    for log2, dims in ((10, 256), (16, 64)):  # one block; 16 blocks of 4096
        count, block = 2**log2, min(2**Chunking.block_log2, 2**log2)
        mu = torch.randn(dims, generator=torch.Generator().manual_seed(1)).to(prng)
        search = timed(lambda: pfr_select(mu, 0, 0, 0, count, block), torch.device(prng), repeats)

        def bare() -> Tensor:
            return [torch.randn(block, dims, device=prng) @ mu for _ in range(count // block)]

        baseline = timed(bare, torch.device(prng), repeats)
        lines.append(Line("RCC PFR search (candidates scored)", f"K=2^{log2}, {dims} dims, blocks of {block}, "
                          f"{count / search / 1e6:.2f} M cand/s, {prng}", search,
                          "bare randn + matvec, same block", baseline))
    return lines


def memory_report(device: torch.device, size: int, batch: int) -> list[str]:
    """Peak memory of a `base` training step on GPU; parameters and saved activations on CPU (meta-free estimate)."""
    net = BASE if device.type == "cuda" else {**BASE, "dropout": 0.0}
    module = tiny_dirac(size, net, device)
    params = sum(p.numel() for p in module.parameters())
    x0 = torch.rand(batch, 3, size, size, device=device)
    saved = []

    def pack(tensor: Tensor) -> Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = module.look_ahead_loss(x0, torch.rand(batch, device=device))
    loss.backward()
    lines = [f"memory: base NCSN++ {params:,} parameters ({params * 4 / 2**20:.0f} MiB float32, Adam state x2 more); "
             f"activations saved for backward at batch {batch}, {size} px: {sum(saved) / 2**20:.0f} MiB ({device})"]
    if device.type == "cuda":
        lines.append("memory: peak GPU memory of that training step: "
                     f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return lines


GROUPS = ["degradations", "operators", "samplers", "training", "rgm", "compression"]


def main(argv: list[str] | None = None) -> list[Line]:
    """Run every benchmark line, print it with its ratio, and write the CSV."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a smoke run)")
    parser.add_argument("--csv", default="bench.csv")
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=GROUPS, help="run these groups of lines only")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    repeats = 3 if args.quick else 7
    torch.manual_seed(0)
    groups = {
        "degradations": lambda: degradation_lines(device, [64] if args.quick else [64, 256], 16, repeats),
        "operators": lambda: operator_lines(device, 64 if args.quick else 256, 16, repeats),
        "samplers": lambda: sampler_lines(device, 32, 16, TINY, "tiny", repeats) + (
            [] if args.quick else sampler_lines(device, 256 if gpu else 64, 4 if gpu else 2, BASE, "base", 3)),
        "training": lambda: training_lines(device, 32, 32 if not args.quick else 8, 6 if args.quick else 12)
        + step_split_lines(device, 32, 32, repeats),
        "rgm": lambda: rgm_lines(device, 32, 32 if not args.quick else 8, 6 if args.quick else 12, repeats),
        "compression": lambda: compression_lines(device, 32, repeats),
    }
    lines = [line for name in GROUPS if name in args.only for line in groups[name]()]
    for line in lines:
        print(f"{line.name:<44} {line.setting:<40} {line.seconds * 1e3:9.2f} ms   vs {line.baseline}: "
              f"{line.baseline_seconds * 1e3:9.2f} ms   time/baseline {1 / line.ratio:6.3f}  (speedup "
              f"{line.ratio:7.2f}x)")
    for text in memory_report(device, 256 if gpu else 64, 4 if gpu else 2):
        print(text)
    with Path(args.csv).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(lines[0].row()))
        writer.writeheader()
        writer.writerows(line.row() for line in lines)
    print(f"written to {args.csv}")
    return lines


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
