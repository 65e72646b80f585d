#!/usr/bin/env bash
# Refiners on the digits benchmark (README "Refiners"): simulate 20k digits, train CycleGAN and SimGAN, export the
# refined datasets, train the same task network on raw / CycleGAN-refined / SimGAN-refined data (3 seeds each) and
# measure the distance of each dataset to the real digits. Chooses configs and seeds only.
set -euo pipefail
out=${OUT:-runs/refiners}
syn2real simulate --out "$out/sim/stage_000" --num-samples 20000 --seed 0
for m in cyclegan simgan; do
  syn2real fit --config "configs/experiments/${m}__digits.yaml" --trainer.logger.init_args.save_dir="$out" \
    --trainer.logger.init_args.version=0 --trainer.enable_progress_bar=false
  syn2real refine --ckpt "$out/${m}__digits/version_0/checkpoints/last.ckpt" --data "$out/sim" --out "$out/refined_$m"
done
for data in sim refined_cyclegan refined_simgan; do
  for seed in 0 1 2; do
    syn2real fit --config configs/experiments/source_only__digits.yaml --data configs/data/simulated_folder.yaml \
      --data.train.init_args.root="$out/$data" --seed_everything "$seed" --trainer.max_epochs 2 \
      --trainer.logger.init_args.save_dir="$out/task" --trainer.logger.init_args.name="$data" \
      --trainer.logger.init_args.version="seed$seed" --trainer.enable_progress_bar=false
  done
done
python benchmarks/dataset_distance.py "$out/sim/stage_000" "$out/refined_cyclegan" "$out/refined_simgan"
