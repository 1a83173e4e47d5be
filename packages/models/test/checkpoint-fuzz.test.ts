// Training checkpoints (OUT.checkpoint/state.json) under fuzzing: a valid state reads back as written; a damaged
// or edited one is a ModelError naming the file, or a state whose invariants hold (epoch within the run's
// epochs, one finite loss per completed epoch); never another exception.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.js';
import { readCheckpointState, resolveTrainOptions } from '../src/train.js';

const root = mkdtempSync(join(tmpdir(), 'dhta-checkpoint-fuzz-'));
let dirs = 0;
const write = (text: string | Uint8Array): string => {
  const dir = join(root, `c${dirs++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'state.json'), text);
  return dir;
};

const stateArb = fc
  .record({
    epochs: fc.integer({ min: 1, max: 20 }),
    batch: fc.integer({ min: 1, max: 512 }),
    seed: fc.nat(2 ** 31),
    lr: fc.double({ min: 1e-4, max: 1, noNaN: true }),
  })
  .chain((o) =>
    fc.record({
      options: fc.constant(resolveTrainOptions('image', o)),
      epoch: fc.integer({ min: 1, max: o.epochs }),
    }),
  )
  .chain(({ options, epoch }) =>
    fc.record({
      format: fc.constant('dhta-checkpoint/1' as const),
      epoch: fc.constant(epoch),
      losses: fc.array(fc.double({ min: 0, max: 10, noNaN: true }), { minLength: epoch, maxLength: epoch }),
      options: fc.constant(options),
    }),
  );

describe('train checkpoints under fuzzing (fast-check, seeded)', () => {
  it('reads valid states back as written', async () => {
    await fc.assert(
      fc.asyncProperty(stateArb, async (state) => {
        expect(await readCheckpointState(write(JSON.stringify(state)))).toEqual(state);
      }),
      { seed: 21, numRuns: 200 },
    );
  });

  it('damaged or edited states: a ModelError naming the file, or a state whose invariants hold', async () => {
    const base = fc.sample(stateArb, { seed: 22, numRuns: 1 })[0];
    const text = JSON.stringify(base);
    const mutation = fc.oneof(
      fc.nat(text.length).map((n) => text.slice(0, n)),
      fc
        .array(fc.tuple(fc.nat(text.length - 1), fc.integer({ min: 0, max: 7 })), {
          minLength: 1,
          maxLength: 6,
        })
        .map((flips) => {
          const b = Buffer.from(text);
          for (const [i, bit] of flips) b[i] ^= 1 << bit;
          return b;
        }),
      // one field (top level or in options) replaced by any JSON value, e.g. epoch -5, 1e9 or "one"
      fc
        .tuple(
          fc.constantFrom(
            'format',
            'epoch',
            'losses',
            'options',
            'info',
            'epochs',
            'batch',
            'lr',
            'milestones',
            'balance',
          ),
          fc.jsonValue({ maxDepth: 2 }),
        )
        .map(([key, value]) => {
          const s = JSON.parse(text);
          if (key in s || ['format', 'epoch', 'losses', 'options', 'info'].includes(key)) s[key] = value;
          else s.options[key] = value;
          return JSON.stringify(s);
        }),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    );
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(mutation, async (bytes) => {
        const dir = write(bytes);
        try {
          const s = await readCheckpointState(dir);
          if (s === null) throw new Error('a present state.json read as absent');
          expect(Number.isInteger(s.epoch) && s.epoch >= 1 && s.epoch <= s.options.epochs).toBe(true);
          expect(s.losses).toHaveLength(s.epoch);
          expect(s.losses.every((l) => Number.isFinite(l))).toBe(true);
        } catch (e) {
          if (!(e instanceof ModelError)) throw e;
          expect(e.message).toContain(join(dir, 'state.json'));
          refused++;
        }
      }),
      { seed: 23, numRuns: 500 },
    );
    expect(refused).toBeGreaterThan(100);
  });
});
