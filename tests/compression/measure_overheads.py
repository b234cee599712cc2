"""Gaussian-source overheads of the RCC codec per chunk setting (3x32x32 N(0.5, 0.02), ladder 1 -> 0.05 in 24 steps):
file/payload bits vs sum KL and I(X;Y), realised shift f, MSE vs MMSE(s) and D(R), encode/decode time, PFR throughput
vs bare randn + matvec. Run: PYTHONPATH=. .venv/bin/python tests/compression/measure_overheads.py"""
import torch, time, math, numpy as np
torch.set_num_threads(1)
from dirac.compression import Codec, Ladder, Chunking, candidate_block, header_bytes
from tests.compression.conftest import gaussian_source
shape=(3,32,32); dims=3072; v=0.02
D,x0=gaussian_source(shape)
for ck,pad in [(8,2),(8,4),(10,2),(12,2)]:
    codec=Codec(D, Ladder(1.0,0.05,24), Chunking(ck,pad), unit_range=False)
    t=time.time(); enc=codec.encode(x0); te=time.time()-t
    t=time.time(); xs,_=codec.decode_noisy(enc.data); td=time.time()-t
    s=enc.sigma; I=0.5*dims*math.log2(1+v/s**2); kl=sum(enc.kl_bits)
    mse=((codec.reconstruct(xs, s, mmse=True)-x0)**2).mean().item(); R=enc.bits/dims
    normals=codec.chunking.candidates*dims*len(enc.kl_bits)
    print(f"ck{ck} pad{pad}: file {enc.bits}b payload/KL {(enc.bits-8*header_bytes(enc.data))/kl:.3f} file/KL {enc.bits/kl:.3f} KL/I {kl/I:.3f} file/I {enc.bits/I:.3f} f {np.mean(enc.shifts):.3f} "
          f"mse/mmse(s) {mse/(v*s*s/(v+s*s)):.2f} mse/D(R) {mse/(v*2**(-2*R)):.2f} enc {te:.1f}s dec {td:.2f}s {normals/te/1e6:.0f}M normals/s")
rows=torch.zeros(4096, 300); mu=torch.randn(300)
t=time.time()
for i in range(20): r=candidate_block(0,0,0,i,4096,300); (r@mu)
print(f"bare randn+matvec {20*4096*300/(time.time()-t)/1e6:.1f}M normals/s (1 thread)")
