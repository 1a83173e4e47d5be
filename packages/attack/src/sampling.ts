// Seeded sampling of queries, target labels and target objects (PROTOCOL.md "Sampling").
import { SeededRandom } from '@dhta/kernels/reference';
import { AttackError } from './errors.ts';

/** A distinct label vector of the database and where it occurs. */
export interface LabelGroup {
  /** The label vector (classes values, a copy). */
  label: Uint8Array;
  /** Database indices whose label vector equals `label` exactly, ascending. */
  members: Int32Array;
}

export interface SamplingOptions {
  /** Seed of the one generator every draw comes from. */
  seed: number;
  /** Queries drawn from the query set without replacement; default 100 (the paper's). */
  queries?: number;
  /** n_t, target objects per query; default 9. */
  targetsPerQuery?: number;
  /**
   * The largest n_t of a sweep this sample belongs to (Fig. 7, Table 6); default targetsPerQuery. Target labels
   * must occur more than this many times, so that every n_t of the sweep sees the same eligible labels and
   * hence, under one seed, the same queries, the same target labels and nested target objects.
   */
  maxTargetsPerQuery?: number;
  /**
   * The open set (PROTOCOL.md, Table 6): only label vectors whose positive classes all lie in this list can be
   * targets (the classes the model never saw in training). Default: any class.
   */
  targetClasses?: readonly number[];
}

export interface AttackSample {
  /** Indices into the query set, in the order drawn (queries x 1). */
  queryIndices: Int32Array;
  /** Per drawn query, its target label vector (queries x classes). */
  targetLabels: Uint8Array;
  /** Per drawn query, the n_t database indices of its target objects, in the order drawn (queries x n_t). */
  targetIndices: Int32Array;
  /** n_t. */
  targetsPerQuery: number;
  classes: number;
  seed: number;
}

function checkPositiveInteger(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new AttackError('BAD_OPTION', `${what}: expected a positive integer, found ${String(value)}.`);
  }
}

function checkLabels(labels: Uint8Array, classes: number, what: string): number {
  checkPositiveInteger(classes, 'classes');
  if (!(labels instanceof Uint8Array) || labels.length % classes !== 0) {
    throw new AttackError(
      'BAD_INPUT',
      `${what}: expected a Uint8Array of label vectors (count x ${classes} classes), found ` +
        `${labels instanceof Uint8Array ? `${labels.length} values` : String(labels)}; pass multi-hot rows ` +
        '(one-hot for single-label data).',
    );
  }
  return labels.length / classes;
}

/** Exact-equality key of label row i. */
function rowKey(labels: Uint8Array, i: number, classes: number): string {
  return labels.subarray(i * classes, (i + 1) * classes).join(',');
}

/**
 * The distinct label vectors of the database, in order of first occurrence, each with the database indices
 * whose label vector equals it exactly.
 */
export function groupByLabel(databaseLabels: Uint8Array, classes: number): LabelGroup[] {
  const n = checkLabels(databaseLabels, classes, 'database labels');
  const groups = new Map<string, { label: Uint8Array; members: number[] }>();
  for (let i = 0; i < n; i++) {
    const key = rowKey(databaseLabels, i, classes);
    let group = groups.get(key);
    if (!group) {
      group = { label: databaseLabels.slice(i * classes, (i + 1) * classes), members: [] };
      groups.set(key, group);
    }
    group.members.push(i);
  }
  return [...groups.values()].map((g) => ({ label: g.label, members: Int32Array.from(g.members) }));
}

/**
 * Label vectors eligible as targets: those that occur more than n_t times in the database and have at
 * least one positive class (an empty label vector is relevant to nothing, so it cannot be a target).
 */
export function eligibleTargetGroups(groups: LabelGroup[], targetsPerQuery: number): LabelGroup[] {
  checkPositiveInteger(targetsPerQuery, 'n_t (targets per query)');
  return groups.filter((g) => g.members.length > targetsPerQuery && g.label.some((v) => v !== 0));
}

function equalRows(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** k distinct values of `pool`, uniformly without replacement (partial Fisher-Yates), in the order drawn. */
export function drawWithoutReplacement(pool: ArrayLike<number>, k: number, rng: SeededRandom): Int32Array {
  if (!Number.isInteger(k) || k < 0 || k > pool.length) {
    throw new AttackError(
      'BAD_OPTION',
      `drawWithoutReplacement: expected 0 <= k <= ${pool.length} (the pool size), found ${String(k)}.`,
    );
  }
  const work = Int32Array.from(pool);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(work.length - i);
    const t = work[i];
    work[i] = work[j];
    work[j] = t;
  }
  return work.slice(0, k);
}

/** Indices of `count` queries drawn uniformly without replacement from a query set of `querySetSize`. */
export function sampleQueries(querySetSize: number, count: number, rng: SeededRandom): Int32Array {
  checkPositiveInteger(count, 'queries');
  if (count > querySetSize) {
    throw new AttackError(
      'BAD_OPTION',
      `queries: expected at most ${querySetSize} queries (the size of the query set), found ${count}; ` +
        'ask for fewer queries or use a larger query set.',
    );
  }
  return drawWithoutReplacement(
    Int32Array.from({ length: querySetSize }, (_, i) => i),
    count,
    rng,
  );
}

/**
 * A target label for a query: drawn uniformly from `eligible` (see eligibleTargetGroups) minus the group
 * whose label vector equals the query's exactly. NO_TARGET when none is left.
 */
export function sampleTargetGroup(
  queryLabel: Uint8Array,
  eligible: LabelGroup[],
  rng: SeededRandom,
): LabelGroup {
  const candidates = eligible.filter((g) => !equalRows(g.label, queryLabel));
  if (candidates.length === 0) {
    throw new AttackError(
      'NO_TARGET',
      `target label: expected at least one database label vector that differs from the query's ` +
        `(${queryLabel.join(',')}) and occurs more than n_t times, found ${eligible.length} eligible label ` +
        `vector(s) and none that differs; lower n_t or use a larger database.`,
    );
  }
  return candidates[rng.int(candidates.length)];
}

/**
 * n_t database indices whose label vector equals `targetLabel` exactly, drawn without replacement.
 * TOO_FEW_TARGETS when the label occurs n_t times or fewer (or not at all).
 */
export function sampleTargetObjects(
  databaseLabels: Uint8Array,
  classes: number,
  targetLabel: Uint8Array,
  targetsPerQuery: number,
  rng: SeededRandom,
  groups: LabelGroup[] = groupByLabel(databaseLabels, classes),
): Int32Array {
  checkPositiveInteger(targetsPerQuery, 'n_t (targets per query)');
  if (targetLabel.length !== classes) {
    throw new AttackError(
      'BAD_INPUT',
      `target label: expected a label vector of ${classes} classes, found ${targetLabel.length} values.`,
    );
  }
  const group = groups.find((g) => equalRows(g.label, targetLabel));
  const found = group ? group.members.length : 0;
  if (found <= targetsPerQuery) {
    throw new AttackError(
      'TOO_FEW_TARGETS',
      `target label (${targetLabel.join(',')}): expected more than n_t = ${targetsPerQuery} database objects ` +
        `with exactly this label vector, found ${found === 0 ? 'none (absent from the database)' : found}; ` +
        'choose another target label or a smaller n_t.',
    );
  }
  return drawWithoutReplacement(group!.members, targetsPerQuery, rng);
}

/**
 * The image-experiment sampling of the paper, from one SeededRandom(seed): first all queries (without
 * replacement), then per query in the order drawn its target label (uniform over the eligible label vectors
 * that differ from the query's) and a uniformly random order of all the database objects with exactly that
 * label vector; its n_t target objects are the first n_t of that order. Deterministic under the seed.
 *
 * No draw depends on n_t: under one seed (and one maxTargetsPerQuery, which decides eligibility), every n_t
 * gives the same queries and target labels, and the target objects for a smaller n_t are a prefix of those
 * for a larger one (so P2P, the first object, is the same object at every n_t). A sweep over n_t is paired.
 */
export function sampleAttack(
  queryLabels: Uint8Array,
  databaseLabels: Uint8Array,
  classes: number,
  options: SamplingOptions,
): AttackSample {
  const querySetSize = checkLabels(queryLabels, classes, 'query labels');
  checkLabels(databaseLabels, classes, 'database labels');
  const count = options.queries ?? 100;
  const nt = options.targetsPerQuery ?? 9;
  checkPositiveInteger(nt, 'n_t (targets per query)');
  const eligibleNt = options.maxTargetsPerQuery ?? nt;
  checkPositiveInteger(eligibleNt, 'maxTargetsPerQuery (the largest n_t of the sweep)');
  if (eligibleNt < nt) {
    throw new AttackError(
      'BAD_OPTION',
      `maxTargetsPerQuery: expected at least n_t = ${nt} (the largest n_t of the sweep), found ${eligibleNt}.`,
    );
  }
  if (!Number.isInteger(options.seed)) {
    throw new AttackError('BAD_OPTION', `seed: expected an integer, found ${String(options.seed)}.`);
  }
  const rng = new SeededRandom(options.seed);
  const groups = groupByLabel(databaseLabels, classes);
  let eligible = eligibleTargetGroups(groups, eligibleNt);
  if (options.targetClasses) {
    const allowed = new Set(options.targetClasses);
    eligible = eligible.filter((g) => g.label.every((v, c) => v === 0 || allowed.has(c)));
    if (eligible.length === 0) {
      throw new AttackError(
        'NO_TARGET',
        `target classes ${options.targetClasses.join(', ')}: expected a database label vector within them that ` +
          `occurs more than n_t = ${eligibleNt} times, found none; check the held-out classes or lower n_t.`,
      );
    }
  }
  const queryIndices = sampleQueries(querySetSize, count, rng);
  const targetLabels = new Uint8Array(count * classes);
  const targetIndices = new Int32Array(count * nt);
  for (let k = 0; k < count; k++) {
    const q = queryIndices[k];
    const queryLabel = queryLabels.subarray(q * classes, (q + 1) * classes);
    let group: LabelGroup;
    try {
      group = sampleTargetGroup(queryLabel, eligible, rng);
    } catch (e) {
      if (e instanceof AttackError) {
        throw new AttackError(e.code, `query ${q} (draw ${k}): ${e.message}`);
      }
      throw e;
    }
    targetLabels.set(group.label, k * classes);
    // The whole group in random order (as many draws whatever n_t is), then its first n_t.
    const order = drawWithoutReplacement(group.members, group.members.length, rng);
    targetIndices.set(order.subarray(0, nt), k * nt);
  }
  return { queryIndices, targetLabels, targetIndices, targetsPerQuery: nt, classes, seed: options.seed };
}
