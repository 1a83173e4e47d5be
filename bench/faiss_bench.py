#!/usr/bin/env python3
"""FAISS IndexBinaryFlat's time for the same search as `benchHamming` (packages/kernels/src/hamming/bench.ts).

Reads the database and queries that the TypeScript side wrote (uint8 .npy in FAISS's layout), times
index.search(queries, k) (after one untimed warm-up; loading and index.add are not timed), writes the
result to OUT_DIR/distances.npy (int32) and OUT_DIR/ids.npy (int64), and prints one JSON line:
  {"peer": "faiss", "version": ..., "threads": ..., "seconds": median, "seconds_all": [...], "n": ..., ...}

Usage:
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/faiss_bench.py \
      --db DB.npy --queries Q.npy --k K [--repeats R] [--out-dir DIR]
"""
import argparse
import json
import os
import statistics
import time

import faiss
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()

    db = np.load(args.db)
    queries = np.load(args.queries)
    if db.dtype != np.uint8 or queries.dtype != np.uint8 or db.ndim != 2 or queries.shape[1:] != db.shape[1:]:
        raise SystemExit("expected uint8 arrays (n, B) and (nq, B), found %s %s and %s %s"
                         % (db.dtype, db.shape, queries.dtype, queries.shape))
    index = faiss.IndexBinaryFlat(db.shape[1] * 8)
    index.add(db)
    index.search(queries, args.k)  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        distances, ids = index.search(queries, args.k)
        times.append(time.perf_counter() - t0)
    if args.out_dir:
        np.save(os.path.join(args.out_dir, "distances.npy"), distances.astype(np.int32))
        np.save(os.path.join(args.out_dir, "ids.npy"), ids.astype(np.int64))
    print(json.dumps({
        "peer": "faiss",
        "version": faiss.__version__,
        "index": "IndexBinaryFlat",
        "threads": faiss.omp_get_max_threads(),
        "n": int(db.shape[0]),
        "bits": int(db.shape[1] * 8),
        "queries": int(queries.shape[0]),
        "k": args.k,
        "seconds": statistics.median(times),
        "seconds_all": times,
    }))


if __name__ == "__main__":
    main()
