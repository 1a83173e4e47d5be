import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { registerBenchAttack } from '../src/bench-attack.js';

/** Runs the program with these arguments and returns what it wrote to stdout, line by line. */
async function stdoutOf(args: string[]): Promise<string[]> {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    await program().parseAsync(args, { from: 'user' });
  } finally {
    spy.mockRestore();
  }
  return lines;
}

function program(): Command {
  const p = new Command().exitOverride();
  p.command('bench');
  registerBenchAttack(p);
  return p;
}

describe('dhta bench attack', () => {
  it('--json prints one line with our query-iterations per second; --out writes the same JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-bench-attack-'));
    const out = join(dir, 'r.json');
    const lines = await stdoutOf([
      'bench',
      'attack',
      '--preset',
      'small-cnn',
      '--batch',
      '3',
      '--iters',
      '2',
      '--check-iters',
      '1',
      '--bits',
      '16',
      '--engine',
      'webgpu',
      '--json',
      '--out',
      out,
    ]);
    const json = lines.filter((l) => l.trim().startsWith('{'));
    expect(json).toHaveLength(1);
    const r = JSON.parse(json[0]);
    expect(r).toMatchObject({
      preset: 'small-cnn',
      input: [1, 28, 28],
      batch: 3,
      bits: 16,
      iters: 2,
      checkIters: 1,
      engine: 'webgpu',
    });
    expect(typeof r.device).toBe('string');
    expect(r.ours.seconds).toBeGreaterThan(0);
    expect(r.ours.queryIterationsPerSecond).toBeCloseTo((3 * 2) / r.ours.seconds, 6);
    expect(r.ours.msPerIteration).toBeCloseTo((r.ours.seconds * 1000) / 2, 6);
    expect(r.ours.dispatchesPerIteration).toBeGreaterThan(0);
    expect(r.loadavg.start).toHaveLength(3);
    expect(r.loadavg.end).toHaveLength(3);
    expect(r.peer).toBeUndefined();
    expect(r.ratio).toBeUndefined();
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(r);
    expect(readdirSync(dir)).toEqual(['r.json']); // no temporary file left behind
  });

  it('--engine wasm runs the same loop on the WebAssembly engine (no GPU dispatches)', async () => {
    const lines = await stdoutOf([
      'bench',
      'attack',
      '--preset',
      'small-cnn',
      '--batch',
      '3',
      '--iters',
      '2',
      '--check-iters',
      '1',
      '--bits',
      '16',
      '--engine',
      'wasm',
      '--repeat',
      '2',
      '--json',
    ]);
    const r = JSON.parse(lines.filter((l) => l.trim().startsWith('{'))[0]);
    expect(r).toMatchObject({ engine: 'wasm', software: true, batch: 3, iters: 2, repeat: 2 });
    // --repeat 2: both timed runs listed; the reported run is the upper middle one.
    expect(r.runs.ours).toHaveLength(2);
    expect(r.ours.queryIterationsPerSecond).toBe(Math.max(...r.runs.ours));
    expect(r.device).toMatch(/^WebAssembly SIMD, [12] CPU threads?$/);
    expect(r.ours.dispatchesPerIteration).toBe(0);
    expect(r.ours.queryIterationsPerSecond).toBeGreaterThan(0);
  });

  it('refuses an unknown preset or peer, and --size on the small CNN, with one clear message', async () => {
    await expect(
      program().parseAsync(['bench', 'attack', '--preset', 'resnet', '--batch', '1'], { from: 'user' }),
    ).rejects.toThrow(/--preset must be small-cnn, vgg11 or video, found "resnet"/);
    await expect(
      program().parseAsync(['bench', 'attack', '--preset', 'small-cnn', '--batch', '1', '--peer', 'jax'], {
        from: 'user',
      }),
    ).rejects.toThrow(/--peer must be torch, found "jax"/);
    await expect(
      program().parseAsync(
        ['bench', 'attack', '--preset', 'small-cnn', '--batch', '1', '--size', '64', '--iters', '1'],
        {
          from: 'user',
        },
      ),
    ).rejects.toThrow(/--size applies to vgg11 only/);
  });
});

describe('dhta bench attack --preset video', () => {
  const tinyVideo = [
    'bench',
    'attack',
    '--preset',
    'video',
    '--batch',
    '2',
    '--iters',
    '2',
    '--check-iters',
    '2',
  ];

  it('attacks the video model (frame CNN, LSTM, head) on clips of 10 frames', async () => {
    const lines = await stdoutOf([...tinyVideo, '--bits', '16', '--engine', 'wasm', '--json']);
    const r = JSON.parse(lines.filter((l) => l.trim().startsWith('{'))[0]);
    expect(r).toMatchObject({
      preset: 'video',
      input: [10, 1, 32, 32],
      batch: 2,
      bits: 16,
      iters: 2,
      engine: 'wasm',
    });
    expect(r.ours.queryIterationsPerSecond).toBeCloseTo((2 * 2) / r.ours.seconds, 6);
    await expect(program().parseAsync([...tinyVideo, '--size', '64'], { from: 'user' })).rejects.toThrow(
      /--size applies to vgg11 only \(video is 10 frames of 32x32\)/,
    );
  }, 120_000);

  it('--peer torch: PyTorch (nn.LSTM, constant alpha 0.1) reaches the same codes and deltas', async () => {
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch, numpy'], { encoding: 'utf8' });
    if (probe.status !== 0)
      throw new Error(
        `/usr/bin/python3 cannot import torch: install it (apt-get install python3-torch libopenblas0-pthread)`,
      );
    const lines = await stdoutOf([
      ...tinyVideo,
      '--bits',
      '16',
      '--engine',
      'wasm',
      '--peer',
      'torch',
      '--threads',
      '1',
      '--json',
    ]);
    const r = JSON.parse(lines.filter((l) => l.trim().startsWith('{'))[0]);
    expect(r.peer).toMatchObject({ engine: 'pytorch', threads: 1 });
    expect(typeof r.peer.env).toBe('object');
    expect(r.check).toMatchObject({
      iterations: 2,
      identicalCodes: 2,
      identicalBitFraction: 1,
      divergedQueries: 0,
    });
    expect(r.check.maxDeltaDiff).toBeLessThan(1e-4);
    expect(r.check.maxFeatureDiff).toBeLessThan(1e-4);
  }, 180_000);
});
