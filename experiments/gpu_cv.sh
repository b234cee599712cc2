#!/usr/bin/env bash
# Issue 30 item 3 on a GPU: does the long recipe generalise? embedded_deblur as committed (the 24-channel net, 8,000
# one-cycle steps on patches at 3 scales with flips/rotations, the cross-validated loss 10 log10(MSE + 3e-3) with
# training t ~ 4t^3) judged by the same 4-fold cross-validation by photograph as `experiment=embedded_cv` (folds,
# seed and validation photographs from conf/cv/kfold.yaml; each fold tests 2 scenes it never trained or validated on).
# Measures, in $OUT/cv_results.md/.csv/.png: per fold and on the mean, Dirac-DO, Dirac-PO, ADMM-TV and PnP-ADMM (both
# tuned on the fold's 2 validation photographs) in PSNR/SSIM/patch SWD, the worst fold and DO - TV per photograph; the
# goal is DO >= TV + 1 dB on the mean and >= TV in every fold, PO's patch SWD below DO's and TV's in every fold.
# PnP-ADMM with a denoiser per fold (cv.denoiser: denoiser_embedded's 500 steps on the fold's own training patches,
# before the fold), so no prior has seen the photographs a fold tests on.
# Expected time (an estimate, never run: no GPU was lent): the tiny net's step is launch-bound on a GPU, about
# 2-5 min of training per fold plus 1-3 min of calibration and evaluation, so 15-40 min for the 4 folds; on 2 CPU
# cores the same command is about 4 x 60 min. Float32 as on the CPU, so the numbers compare with the README's.
# Two folds at a time share the GPU (cv.jobs=2, spawned processes: the tiny net leaves it mostly idle). Extra Hydra
# overrides pass through: `bash experiments/gpu_cv.sh trainer.max_steps=16000`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/gpu_cv/embedded_deblur}
nvidia-smi --query-gpu=name,memory.total --format=csv || true
"$PY" -m dirac.run experiment=embedded_deblur cv=kfold cv.jobs=2 'cv.denoiser=["experiment=denoiser_embedded"]' \
    trainer.accelerator=gpu trainer.devices=1 data.pin_memory=true logger=csv trainer.enable_progress_bar=false \
    name=gpu_cv_embedded_deblur hydra.run.dir="$OUT" "$@"
echo "wall time of the 4 folds: ${SECONDS} s"
