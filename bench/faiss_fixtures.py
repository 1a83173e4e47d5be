#!/usr/bin/env python3
"""Generates the FAISS fixtures of the Hamming search tests (run once; the .npy files are committed).

For 16, 64 and 100 bits: a small random database with many exact ties (half of it copies of a few codes),
queries (some copies of database codes), and FAISS IndexBinaryFlat's k=10 search. Writes, per code
length B, to packages/kernels/test/fixtures/hamming/:
  bB_db.npy         uint8 (n, ceil(B/8))   FAISS layout (bit j in byte j>>3, LSB first)
  bB_queries.npy    uint8 (nq, ceil(B/8))
  bB_distances.npy  int32 (nq, 10)
  bB_ids.npy        int64 (nq, 10)
FAISS needs a multiple of 8 bits: 100-bit codes are searched as 104-bit codes whose last 4 bits are 0,
which gives the same distances.

Usage (Debian's FAISS): env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/faiss_fixtures.py
"""
import os
import sys

import faiss
import numpy as np

K = 10
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packages", "kernels", "test", "fixtures", "hamming")


def make(bits, n, nq, distinct, seed):
    rng = np.random.default_rng(seed)
    nbytes = (bits + 7) // 8

    def random_codes(count):
        codes = rng.integers(0, 256, size=(count, nbytes), dtype=np.uint8)
        rest = bits % 8
        if rest:
            codes[:, -1] &= (1 << rest) - 1
        return codes

    pool = random_codes(distinct)
    db = random_codes(n)
    copies = rng.random(n) < 0.5
    db[copies] = pool[rng.integers(0, distinct, size=int(copies.sum()))]
    queries = random_codes(nq)
    for i in range(0, nq, 3):
        queries[i] = db[rng.integers(0, n)]
    return db, queries


def main():
    os.makedirs(OUT, exist_ok=True)
    for bits, n, nq, distinct, seed in [(16, 1500, 40, 30, 16), (64, 2000, 40, 40, 64), (100, 1500, 40, 25, 100)]:
        db, queries = make(bits, n, nq, distinct, seed)
        index = faiss.IndexBinaryFlat(db.shape[1] * 8)
        index.add(db)
        distances, ids = index.search(queries, K)
        prefix = os.path.join(OUT, "b%d_" % bits)
        np.save(prefix + "db.npy", db)
        np.save(prefix + "queries.npy", queries)
        np.save(prefix + "distances.npy", distances.astype(np.int32))
        np.save(prefix + "ids.npy", ids.astype(np.int64))
        print("%d bits: n=%d, nq=%d, k=%d, faiss %s" % (bits, n, nq, K, faiss.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
