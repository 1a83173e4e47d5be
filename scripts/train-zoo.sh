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
for data in mnist fashion-mnist; do
  for bits in 32 16 48 64; do
    run "$data-$bits" --data "$data" --preset small-cnn --bits "$bits" --epochs 12 --train-per-class 200 --seed 0
  done
done
run moving-mnist-32 --data moving-mnist --preset video --bits 32 --epochs 20 --seed 0
