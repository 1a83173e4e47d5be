import { type Dataset, firstLabels } from './dataset.js';
import { DataError } from './errors.js';
import { Rng } from './rng.js';

const ascending = (a: number, b: number) => a - b;

/**
 * Up to `perClass` items of each class (first positive label), drawn without replacement with the seeded
 * generator, classes in `exclude` skipped; returned in ascending index order. A class with fewer items
 * gives all it has.
 */
export function samplePerClass(
  ds: Dataset,
  perClass: number,
  rng: Rng,
  exclude: ReadonlySet<number> = new Set(),
): number[] {
  const cls = firstLabels(ds);
  const byClass: number[][] = Array.from({ length: ds.classes }, () => []);
  cls.forEach((c, i) => {
    if (c >= 0) byClass[c].push(i);
  });
  const out: number[] = [];
  byClass.forEach((items, c) => {
    if (!exclude.has(c)) out.push(...rng.sample(items, perClass));
  });
  return out.sort(ascending);
}

/** Items that carry none of the given labels. */
function withoutLabels(ds: Dataset, labels: ReadonlySet<number>, candidates: readonly number[]): number[] {
  if (labels.size === 0) return candidates.slice();
  const l = ds.labels();
  return candidates.filter((i) => ![...labels].some((c) => l[i * ds.classes + c] === 1));
}

export function checkHeldOut(classes: number, heldOut: readonly number[], name: string): Set<number> {
  for (const c of heldOut) {
    if (!Number.isInteger(c) || c < 0 || c >= classes)
      throw new DataError('BAD_OPTION', `${name}: held-out class ${c} is outside 0..${classes - 1}`);
  }
  const set = new Set(heldOut);
  if (set.size >= classes)
    throw new DataError(
      'BAD_OPTION',
      `${name}: holding out all ${classes} classes leaves nothing to train on`,
    );
  return set;
}

export interface Splits {
  train: Dataset;
  database: Dataset;
  query: Dataset;
}

/**
 * ImageNet-style (PROTOCOL.md): database = the training images, queries = the test images, training subset
 * = `perClass` per class drawn from the training images. Open set: held-out classes are left out of the
 * training subset only (the database keeps them, so they can be targets).
 */
export function imagenetStyle(
  trainPool: Dataset,
  testPool: Dataset,
  perClass: number,
  seed: number,
  heldOut: readonly number[] = [],
  name = trainPool.name,
): Splits {
  const held = checkHeldOut(trainPool.classes, heldOut, name);
  const train = samplePerClass(trainPool, perClass, new Rng(seed), held);
  return {
    train: trainPool.subset(train, { name: `${name}/train` }),
    database: trainPool.subset(range(trainPool.length), { name: `${name}/database` }),
    query: testPool.subset(range(testPool.length), { name: `${name}/query` }),
  };
}

/**
 * NUS-WIDE-style: keep the `topLabels` most frequent labels (ties: lower label index first; label columns
 * in ascending index order) and the items with at least one of them; `queries` of those at random for the
 * query set, the rest the database, `trainSize` of the database at random for training.
 */
export function nusWideStyle(
  all: Dataset,
  seed: number,
  options: {
    topLabels?: number;
    queries?: number;
    trainSize?: number;
    heldOut?: readonly number[];
    name?: string;
  } = {},
): Splits & { columns: number[] } {
  const name = options.name ?? all.name;
  const top = options.topLabels ?? 20;
  const nq = options.queries ?? 5000;
  const nt = options.trainSize ?? 10000;
  const l = all.labels();
  const counts = new Array(all.classes).fill(0);
  for (let i = 0; i < all.length; i++)
    for (let c = 0; c < all.classes; c++) counts[c] += l[i * all.classes + c];
  const columns = Array.from(counts.keys())
    .sort((a, b) => counts[b] - counts[a] || a - b)
    .slice(0, Math.min(top, all.classes))
    .sort(ascending);
  const keep = range(all.length).filter((i) => columns.some((c) => l[i * all.classes + c] === 1));
  if (keep.length <= nq)
    throw new DataError(
      'BAD_OPTION',
      `${name}: ${keep.length} items carry one of the ${columns.length} most frequent labels, not more than the ${nq} queries asked for`,
      { hint: 'ask for fewer queries (queries=N)' },
    );
  const rng = new Rng(seed);
  const shuffled = rng.shuffle(keep.slice());
  const query = shuffled.slice(0, nq).sort(ascending);
  const database = shuffled.slice(nq).sort(ascending);
  const view = all.subset(keep, { columns });
  const held = checkHeldOut(view.classes, options.heldOut ?? [], name);
  // Training candidates: database items (their position in the column view) without held-out labels.
  const pos = new Map(keep.map((i, k) => [i, k]));
  const dbInView = database.map((i) => pos.get(i) as number);
  const candidates = withoutLabels(view, held, dbInView);
  const train = rng
    .sample(candidates, nt)
    .map((k) => keep[k])
    .sort(ascending);
  return {
    columns,
    train: all.subset(train, { name: `${name}/train`, columns }),
    database: all.subset(database, { name: `${name}/database`, columns }),
    query: all.subset(query, { name: `${name}/query`, columns }),
  };
}

/**
 * Video-style: per class (first positive label), `perClass` clips at random for queries, as many others for
 * training, the rest the database. Held-out classes give no training clips (their clips go to the database).
 */
export function videoStyle(
  all: Dataset,
  perClass: number,
  seed: number,
  heldOut: readonly number[] = [],
  name = all.name,
): Splits {
  const held = checkHeldOut(all.classes, heldOut, name);
  const cls = firstLabels(all);
  const rng = new Rng(seed);
  const query: number[] = [];
  const train: number[] = [];
  const database: number[] = [];
  for (let c = 0; c < all.classes; c++) {
    const items = range(all.length).filter((i) => cls[i] === c);
    const order = rng.shuffle(items);
    query.push(...order.slice(0, perClass));
    const t = order.slice(perClass, 2 * perClass);
    if (held.has(c)) database.push(...t);
    else train.push(...t);
    database.push(...order.slice(2 * perClass));
  }
  return {
    train: all.subset(train.sort(ascending), { name: `${name}/train` }),
    database: all.subset(database.sort(ascending), { name: `${name}/database` }),
    query: all.subset(query.sort(ascending), { name: `${name}/query` }),
  };
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
