#!/usr/bin/env bash
# Trains the model zoo (zoo/<data>-<bits>) with this project's own code: the small CNN on MNIST and
# Fashion-MNIST at 16, 32, 48 and 64 bits, and the video model on moving MNIST at 32 bits. Each model's card
# (in its model.json) records data, split, epochs, seed, learning rate and clean MAP.
# Usage: bash scripts/train-zoo.sh [NAME ...]   (names like mnist-32; default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
want=("$@")
run() {
  local name=$1; shift
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then return; fi
  echo "== $name: dhta train $*" >&2
  pnpm dhta train "$@" --out "zoo/$name"
}
# MNIST: 2000 training images (200 per class), 12 epochs. Fashion-MNIST's classes overlap more: 200 per class
# and 12 epochs gave a clean MAP of 0.627 at 32 bits, so it trains on 5000 images (500 per class) for 15.
for bits in 32 16 48 64; do
  run "mnist-$bits" --data mnist --preset small-cnn --bits "$bits" --epochs 12 --train-per-class 200 --seed 0
done
for bits in 32 16 48 64; do
  run "fashion-mnist-$bits" --data fashion-mnist --preset small-cnn --bits "$bits" --epochs 15 --train-per-class 500 --seed 0
done
run moving-mnist-32 --data moving-mnist --preset video --bits 32 --epochs 10 --lr 0.1 --batch 20 --train-per-class 500 --seed 0
