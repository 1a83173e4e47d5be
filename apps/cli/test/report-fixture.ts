// A small protocol-run folder, shaped like what runProtocol writes (metrics.json, curves.json, retrieval.json,
// results.jsonl, examples/*.npy), made from real MNIST (or moving-MNIST clips) in well under a second, so the
// report tests need no model, no GPU and no 60k-item encode.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset } from '@dhta/data';
import { writeNpyFile } from '@dhta/kernels/hamming';

export interface FixtureOptions {
  data?: 'mnist' | 'moving-mnist';
  queries?: number;
  bits?: number;
  seed?: number;
  /** Methods run (original always first). */
  methods?: string[];
}

export interface Fixture {
  dir: string;
  queries: number;
  methods: string[];
  /** Methods with adversarial examples (all but original). */
  attacked: string[];
  top: number;
}

/** A deterministic generator (mulberry32): the fixture is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function makeRunFolder(dir: string, o: FixtureOptions = {}): Promise<Fixture> {
  const dataName = o.data ?? 'mnist';
  const q = o.queries ?? 3;
  const bits = o.bits ?? 32;
  const seed = o.seed ?? 1;
  const methods = o.methods ?? ['original', 'noise', 'p2p', 'dhta'];
  const attacked = methods.filter((m) => m !== 'original');
  const top = 10;
  const random = rng(seed);
  const data = await openDataset(dataName, { seed });
  const C = data.info.classes;
  const firstLabel = (labels: Uint8Array, i: number) => labels.subarray(i * C, (i + 1) * C).indexOf(1);
  const dbLabels = data.database.labels();
  const byClass: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < Math.min(data.database.length, 3000); i++) byClass[firstLabel(dbLabels, i)].push(i);
  const qLabels = data.query.labels();
  const queryIds = Array.from({ length: q }, (_, i) => 7 * i + 3);
  const queries = queryIds.map((id) => {
    const label = firstLabel(qLabels, id);
    return { query: id, label: [label], target: [(label + 1 + (id % (C - 1))) % C] };
  });

  mkdirSync(join(dir, 'examples'), { recursive: true });
  // Top results: the benign query finds its own class; stronger attacks find more of the target class.
  const strength: Record<string, number> = { original: 0, noise: 0, hag: 0, p2p: 0.6, dhta: 0.9 };
  const grids: Record<string, unknown> = {};
  for (const m of ['benign', ...attacked]) {
    const s = strength[m === 'benign' ? 'original' : m] ?? 0.5;
    grids[m] = queries.map((info) =>
      Array.from({ length: top }, (_, r) => {
        const cls = random() < s ? info.target[0] : random() < 0.8 ? info.label[0] : Math.floor(random() * C);
        const pool = byClass[cls];
        const id = pool[Math.floor(random() * pool.length)];
        const label = firstLabel(dbLabels, id);
        return {
          id,
          distance: Math.min(bits, r + Math.floor(random() * 3)),
          label: [label],
          hasTarget: label === info.target[0],
          hasQueryLabel: label === info.label[0],
        };
      }),
    );
  }
  writeFileSync(
    join(dir, 'retrieval.json'),
    `${JSON.stringify({ data: dataName, seed, split: 'database', queries, top: grids })}\n`,
  );

  const benign = await data.query.load(queryIds);
  const shape = data.query.batchShape(q);
  await writeNpyFile(join(dir, 'examples', 'benign.npy'), benign, shape);
  const eps = 0.03;
  const metrics = [];
  const curves: Record<string, unknown> = {};
  const lines: string[] = [];
  for (const m of methods) {
    const s = strength[m] ?? 0;
    let perceptibility: number | null = null;
    if (m !== 'original') {
      const adv = new Float32Array(benign.length);
      let sq = 0;
      for (let i = 0; i < benign.length; i++) {
        // Structured perturbations for attacks (a stripe pattern), uniform noise for Noise.
        const d = m === 'noise' ? (2 * random() - 1) * eps : eps * Math.sin(i / 3) * (i % 28 < 14 ? 1 : -0.5);
        adv[i] = Math.min(1, Math.max(0, benign[i] + d));
        sq += (adv[i] - benign[i]) ** 2;
      }
      perceptibility = Math.sqrt(sq / benign.length);
      await writeNpyFile(join(dir, 'examples', `${m}.npy`), adv, shape);
    }
    const tMap = m === 'original' ? 0.012 : m === 'noise' ? 0.015 : s * 0.85;
    const map = m === 'original' ? 0.83 : m === 'noise' ? 0.8 : 0.83 * (1 - s * 0.8);
    metrics.push({
      method: m,
      tMap,
      map,
      perceptibility,
      anchorDistance: bits * (0.5 - 0.45 * s),
      seconds: m === 'original' ? 0.1 : 12.5,
      queryIterationsPerSecond: m === 'original' ? null : 400,
    });
    const radii = Array.from({ length: bits + 1 }, (_, r) => r);
    const recall = radii.map((r) => 1 - (1 - r / bits) ** (1 + 4 * s));
    const precision = radii.map((r) => (r < 2 && s === 0 ? null : 0.1 + 0.85 * s * (1 - r / bits)));
    const ns = Array.from({ length: 10 }, (_, i) => 100 * (i + 1));
    curves[m] = { radii, precision, recall, ns, precisionAtN: ns.map((n) => 0.1 + s * 0.8 * (1 - n / 2000)) };
    for (const [i, info] of queries.entries())
      lines.push(
        JSON.stringify({
          method: m,
          query: info.query,
          label: info.label,
          target: info.target,
          ap: map,
          tap: tMap,
          perceptibility: perceptibility === null ? null : perceptibility + i * 1e-4,
        }),
      );
  }
  writeFileSync(join(dir, 'curves.json'), `${JSON.stringify({ reference: 'target labels', curves })}\n`);
  writeFileSync(join(dir, 'results.jsonl'), `${lines.join('\n')}\n`);
  writeFileSync(
    join(dir, 'metrics.json'),
    `${JSON.stringify(
      {
        metrics,
        R: data.database.length,
        zeroHits: 'skip',
        databaseSize: data.database.length,
        queries: q,
        nT: 9,
        bits,
        seed,
        data: dataName,
        model: 'zoo/fixture',
        iterations: 50,
        seconds: { encode: 1.5, total: 40 },
        attack: { iterations: 50, eps: 0.032, step: 'l2', lr: 1 },
      },
      null,
      2,
    )}\n`,
  );
  return { dir, queries: q, methods, attacked, top };
}
