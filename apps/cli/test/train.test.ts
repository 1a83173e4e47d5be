import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '@dhta/kernels/reference';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCli, cliRunner, lastJson } from './cli-helper.js';
import { writeIdx } from './idx-fixture.js';

const root = mkdtempSync(join(tmpdir(), 'dhta-train-cli-'));
const dhta = cliRunner(join(root, 'cache'));

describe('dhta train', () => {
  beforeAll(async () => {
    await buildCli();
    writeIdx(join(root, 'idx'), new SeededRandom(9));
  });

  it('trains a preset, writes the bundle with its model card and removes the checkpoint', () => {
    const out = join(root, 'm16');
    const args = [
      'train',
      '--data',
      `idx:${join(root, 'idx')}`,
      '--preset',
      'small-cnn',
      '--bits',
      '16',
      '--epochs',
      '2',
      '--train-per-class',
      '10',
      '--lr-steps',
      '0.5',
      '--eta',
      '0.2',
      '--init-hash-scale',
      '10',
      '--out',
      out,
    ];
    const r = dhta(...args, '--json');
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const card = lastJson(r);
    expect(card).toMatchObject({
      preset: 'small-cnn',
      epochs: 2,
      seed: 0,
      lr: 0.5,
      balance: true,
      cleanMapR: 60,
      batch: 24,
      lrSteps: [0.5],
      eta: 0.2,
      weightDecay: 5e-4,
      momentum: 0.9,
      initHashScale: 10,
    });
    expect(card.split).toMatchObject({ train: 30, database: 60, query: 15 });
    expect(card.losses).toHaveLength(2);
    expect(card.cleanMap).toBeGreaterThan(0);
    const spec = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
    expect(spec.card.cleanMap).toBe(card.cleanMap);
    expect(existsSync(join(out, 'weights.safetensors'))).toBe(true);
    expect(existsSync(`${out}.checkpoint`)).toBe(false);
    // The database codes computed for the clean MAP are in the protocol's cache (the card aside), for the
    // WebGPU engine that computed them (the WebAssembly engine keeps its own entries).
    const attack = dhta(
      'attack',
      '--engine',
      'webgpu',
      '--model',
      out,
      '--data',
      `idx:${join(root, 'idx')}`,
      '--queries',
      '2',
      '--iters',
      '2',
      '--methods',
      'original',
      '--out-dir',
      join(root, 'a'),
      '--json',
    );
    expect(attack.code).toBe(0);
    expect(lastJson(attack).databaseCached).toBe(true);
    // A leftover checkpoint is not overwritten silently.
    mkdirSync(`${out}2.checkpoint`);
    const refused = dhta(...args.slice(0, -1), `${out}2`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/a checkpoint of an earlier run is at .*m162\.checkpoint/);
    expect(refused.stderr).toMatch(/--resume/);
    const video = dhta(
      'train',
      '--data',
      `idx:${join(root, 'idx')}`,
      '--preset',
      'video',
      '--bits',
      '16',
      '--epochs',
      '1',
      '--out',
      join(root, 'v'),
    );
    expect(video.stderr).toMatch(/video is a video model; .* holds images/);
    const badSteps = dhta(...args.slice(0, -1).map((a) => (a === '0.5' ? '2' : a)), join(root, 'bad'));
    expect(badSteps.code).not.toBe(0);
    expect(badSteps.stderr).toMatch(
      /--lr-steps must be comma-separated fractions between 0 and 1 .*found "2"/,
    );
  });
});
