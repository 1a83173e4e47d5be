import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '@dhta/kernels/reference';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCli, cliRunner, lastJson } from './cli-helper.js';
import { writeIdx } from './idx-fixture.js';

const root = mkdtempSync(join(tmpdir(), 'dhta-train-cli-'));
const dhta = cliRunner(join(root, 'cache'));

describe('dhta train', () => {
  // Bundling takes a few seconds, more on a loaded machine than the default hook timeout allows.
  beforeAll(async () => {
    await buildCli();
    writeIdx(join(root, 'idx'), new SeededRandom(9));
  }, 120_000);

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
    // The clean MAP ran on the fast engine: the WebAssembly one on a software adapter (as here), else WebGPU.
    expect(['wasm', 'webgpu']).toContain(card.cleanMapEngine);
    expect(card.losses).toHaveLength(2);
    expect(card.cleanMap).toBeGreaterThan(0);
    const spec = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
    expect(spec.card.cleanMap).toBe(card.cleanMap);
    expect(existsSync(join(out, 'weights.safetensors'))).toBe(true);
    expect(existsSync(`${out}.checkpoint`)).toBe(false);
    // The database codes computed for the clean MAP are in the protocol's cache (the card aside), for the
    // engine that computed them (each engine keeps its own entries).
    const attack = dhta(
      'attack',
      '--engine',
      card.cleanMapEngine,
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
  /** A small-cnn run on the fixture (30 training items), fast enough to run several times. */
  const base = (out: string, ...more: string[]) => [
    'train',
    '--data',
    `idx:${join(root, 'idx')}`,
    '--preset',
    'small-cnn',
    '--bits',
    '16',
    '--train-per-class',
    '10',
    '--init-hash-scale',
    '10',
    '--out',
    out,
    ...more,
  ];

  it('measures the clean MAP on the engine --engine names, on --eval-queries queries, or not at all with --no-eval', () => {
    const out = join(root, 'eval');
    const r = dhta(...base(out, '--epochs', '1', '--engine', 'wasm', '--eval-queries', '5'));
    expect(r.stderr).toMatch(/clean MAP: 5 queries, encoded on WebAssembly SIMD/);
    expect(r.stderr).toMatch(/encode database: 60\/60 items/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^clean MAP [0-9.]+% \(5 queries, R 60, encoded on WebAssembly SIMD, .* s\); wrote /,
    );
    const card = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')).card;
    expect(card).toMatchObject({ cleanMapEngine: 'wasm', cleanMapQueries: 5, cleanMapR: 60 });
    expect(card.cleanMap).toBeGreaterThan(0);
    const cache = join(root, 'no-eval-cache');
    const skip = cliRunner(cache)(...base(join(root, 'no-eval'), '--epochs', '1', '--no-eval'));
    expect(skip.code).toBe(0);
    expect(skip.stdout).toMatch(/clean MAP not measured \(--no-eval\); wrote .*no-eval/);
    expect(skip.stderr).not.toMatch(/encode database/);
    expect(existsSync(join(cache, 'codes'))).toBe(false); // no database was encoded
    const spec = JSON.parse(readFileSync(join(root, 'no-eval', 'model.json'), 'utf8'));
    expect(spec.card).toMatchObject({ cleanMap: null, cleanMapQueries: 0, cleanMapEngine: null });
  });

  it('checks every argument before any work, and leaves no file when one is wrong', () => {
    const out = join(root, 'bad', 'm');
    const cases: [string[], RegExp][] = [
      [['--bits', '100000', '--epochs', '1'], /--bits must be an integer .*4096, found "100000"/],
      [['--bits', '0', '--epochs', '1'], /--bits must be an integer .*found "0"/],
      [['--epochs', '0'], /--epochs must be an integer .*found "0"/],
      [['--epochs', '2', '--batch', '1.5'], /--batch must be an integer .*found "1.5"/],
      [['--epochs', '2', '--lr', '-1'], /--lr must be a number > 0.*found "-1"/],
      [['--epochs', '2', '--stop-after', '3'], /--stop-after 3 is more than --epochs 2/],
      [['--epochs', '2', '--held-out', '7'], /held-out class 7 is outside 0..2/],
      [['--epochs', '2', '--no-eval', '--eval-queries', '4'], /--no-eval skips the clean MAP/],
    ];
    for (const [args, message] of cases) {
      const a = base(out, ...args);
      // --bits is given once: the case's value replaces the base's 16.
      const bits = args.indexOf('--bits');
      if (bits >= 0) a.splice(a.indexOf('--bits'), 2);
      const t0 = performance.now();
      const r = dhta(...a);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr).not.toMatch(/^training|epoch 1/m);
      // No training: the refusal comes within the time of starting the CLI (about a second when idle).
      expect(performance.now() - t0, args.join(' ')).toBeLessThan(30_000);
      expect(existsSync(join(root, 'bad')), args.join(' ')).toBe(false);
    }
    // An --out the bundle cannot replace is refused before training too.
    mkdirSync(join(root, 'notabundle'));
    writeFileSync(join(root, 'notabundle', 'notes.txt'), 'mine');
    const taken = dhta(...base(join(root, 'notabundle'), '--epochs', '1'));
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toMatch(/--out .*notabundle is a folder that holds no model bundle \(notes\.txt\)/);
    expect(existsSync(join(root, 'notabundle.checkpoint'))).toBe(false);
  });

  it('resumes only a valid checkpoint of the same settings, unless told, and records any change', () => {
    const out = join(root, 'r');
    const ckpt = `${out}.checkpoint`;
    const stateFile = join(ckpt, 'state.json');
    const first = dhta(...base(out, '--epochs', '3', '--stop-after', '1'));
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/stopped after epoch 1 of 3; continue with --resume/);
    expect(existsSync(out)).toBe(false);
    const state = readFileSync(stateFile, 'utf8');
    expect(JSON.parse(state).info.run).toMatchObject({ preset: 'small-cnn', bits: 16, initHashScale: 10 });
    // Other settings than the checkpoint's: refused, each named, with the file.
    const lr = dhta(...base(out, '--epochs', '3', '--resume', '--lr', '0.1', '--seed', '3'));
    expect(lr.code).not.toBe(0);
    expect(lr.stderr).toContain(stateFile);
    expect(lr.stderr).toMatch(
      /settings other than the checkpoint's: --lr 0.5 \(now 0.1\), --seed 0 \(now 3\)/,
    );
    expect(lr.stderr).toMatch(/--allow-changed-settings/);
    const bits = dhta(...base(out, '--epochs', '3', '--resume').map((a) => (a === '16' ? '24' : a)));
    expect(bits.code).not.toBe(0);
    expect(bits.stderr).toMatch(/the checkpoint is of another run: --bits 16 \(now 24\)/);
    // A damaged or edited state.json: refused, naming the file and the field.
    const tampered: [string, RegExp][] = [
      [
        state.replace(/"epoch": 1/, '"epoch": -5'),
        /'epoch' \(epochs completed\) must be an integer from 1 to the run's 3 epochs, found -5/,
      ],
      [state.replace(/"epoch": 1/, '"epoch": 1e9'), /'epoch' .* found 1000000000/],
      [state.replace(/"epoch": 1/, '"epoch": "one"'), /'epoch' .* found "one"/],
      [state.replace(/"lr": 0.5/, '"lr": "fast"'), /'options.lr' must be a finite number >= 0, found "fast"/],
      [state.slice(0, state.length / 2), /not valid JSON/],
    ];
    for (const [text, message] of tampered) {
      writeFileSync(stateFile, text);
      const r = dhta(...base(out, '--epochs', '3', '--resume', '--no-eval'));
      expect(r.code, text.slice(0, 80)).not.toBe(0);
      expect(r.stderr).toContain(`${stateFile}:`);
      expect(r.stderr).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
    writeFileSync(stateFile, state);
    // Told to: the rest of the run takes the new learning rate, and the card says from which epoch.
    const resumed = dhta(
      ...base(out, '--epochs', '3', '--resume', '--lr', '0.1', '--allow-changed-settings', '--no-eval'),
    );
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(
      /resuming .*r\.checkpoint after epoch 1 \(changed: lr 0.5 -> 0.1 from epoch 2\)/,
    );
    const card = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')).card;
    expect(card.losses).toHaveLength(3);
    expect(card.lr).toBe(0.1);
    expect(card.resumed).toEqual({
      afterEpoch: 1,
      changedSettings: [{ setting: 'lr', before: 0.5, after: 0.1, fromEpoch: 2 }],
    });
    expect(readdirSync(root)).not.toContain('r.checkpoint');
  });
});
