"""GPU check (issue 20): one real-size `base` Dirac training step in bf16 with torch.compile, one reverse pass, then
the benchmark; prints what it measured. Run it where a GPU is lent: `bash experiments/gpu_check.sh`.

    python experiments/gpu_check.py [--device cuda] [--size 256] [--batch 4] [--net base|tiny] [--no-compile]

`--device cpu --size 32 --net tiny --no-compile` is the smoke run of the same code on a CPU.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch

from dirac.degradations import GaussianBlur
from dirac.degradations.noise import GeometricNoise
from dirac.methods.dirac import DiracModule, LookAheadLoss
from dirac.nets import NCSNpp
from dirac.performance import compile_backbone
from dirac.restorers import DiracSampler

NETS = {"base": dict(model_channels=128, channel_mult=(1, 1, 2, 2, 2, 2, 2), num_blocks=2, attn_resolutions=(16,),
                     dropout=0.1),
        "tiny": dict(model_channels=32, channel_mult=(1, 2, 2), num_blocks=1, attn_resolutions=(8,), dropout=0.0)}


def synchronize(device: torch.device) -> None:
    """Wait for the device (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Time a bf16 training step (compiled) and a reverse pass of the PO preset; report peak memory."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--net", choices=sorted(NETS), default="base")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    torch.set_float32_matmul_precision("high")
    sampler = DiracSampler(dt=0.02, stop_t=0.25, guidance="std")
    module = DiracModule(NCSNpp(3, 3, args.size, **NETS[args.net]), GaussianBlur(3, args.size), GeometricNoise(),
                         LookAheadLoss(1.0), partial(torch.optim.Adam, lr=1e-4), sampler.with_stop(1.0), sampler)
    module = module.to(device)
    if not args.no_compile:
        compile_backbone(module, "inductor", None)
    optimizer = module.configure_optimizers()
    x0 = torch.rand(args.batch, 3, args.size, args.size, device=device)
    dtype = torch.bfloat16
    times = []
    for step in range(4):  # the first steps include compilation
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype):
            loss = module.look_ahead_loss(x0, torch.rand(args.batch, device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
        print(f"training step {step}: {times[-1]:.3f} s, loss {float(loss):.4g} ({loss.dtype})", flush=True)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    print(f"{args.net} NCSN++ at {args.size} px, batch {args.batch}, bf16-mixed, compile={not args.no_compile}: "
          f"steady step {min(times[1:]):.3f} s, peak memory {peak:.2f} GiB")
    y = module.degradation(x0, 1.0)
    synchronize(device)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=dtype):
        x_hat = module.restorers()["dirac_po"](y, module.degradation)
    synchronize(device)
    print(f"Dirac-PO reverse pass ({sampler.nfe} NFE, guided, bf16 network): {time.perf_counter() - start:.2f} s, "
          f"output {x_hat.dtype}, finite {bool(torch.isfinite(x_hat).all())}")


if __name__ == "__main__":
    main()
