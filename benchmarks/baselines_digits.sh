#!/usr/bin/env bash
# Source-only and target-oracle on the digits benchmark, 3 training seeds each (README "Measured").
# Chooses configs and seeds only; every hyperparameter lives in configs/experiments/.
set -euo pipefail
for exp in source_only__digits target_oracle__digits; do
  for seed in 0 1 2; do
    syn2real fit --config "configs/experiments/${exp}.yaml" --seed_everything "${seed}" \
      --trainer.logger.init_args.version "seed${seed}" --trainer.enable_progress_bar false
  done
done
python benchmarks/summarize.py runs/source_only__digits runs/target_oracle__digits
