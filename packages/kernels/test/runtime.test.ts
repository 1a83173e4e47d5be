import { describe, expect, it } from 'vitest';
import { KernelError } from '../src/errors.js';
import { bindGroupLayoutEntries, createGpu, grid } from '../src/gpu/context.js';
import { relu, reluBackward } from '../src/ops/relu.js';
import { useGpu } from './helpers.js';

describe('GPU runtime', () => {
  const gpu = useGpu();

  it('round-trips f32 and u32 tensors', async () => {
    const g = gpu();
    const a = g.tensor([2, 3], [1, -2, 3.5, 4, 5, -6]);
    expect(Array.from(await g.readF32(a))).toEqual([1, -2, 3.5, 4, 5, -6]);
    const b = g.tensor([3], [1, 0xffffffff, 7], 'u32');
    expect(Array.from(await g.readU32(b))).toEqual([1, 0xffffffff, 7]);
    a.release();
    b.release();
  });

  it('poisons empty tensors so unwritten elements show', async () => {
    const g = gpu();
    const t = g.empty([5]);
    expect(Array.from(await g.readF32(t)).every(Number.isNaN)).toBe(true);
    const z = g.zeros([5]);
    expect(Array.from(await g.readF32(z))).toEqual([0, 0, 0, 0, 0]);
    t.release();
    z.release();
  });

  it('runs a kernel over more than 65535 workgroups', async () => {
    const g = gpu();
    const n = 65536 * 256 + 37; // 65537 workgroups of 256
    expect(grid(Math.ceil(n / 256))[1]).toBeGreaterThan(1);
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = (i % 7) - 3;
    const tx = g.tensor([n], x);
    const y = await g.readF32(relu(g, tx));
    let bad = 0;
    for (let i = 0; i < n; i++) if (y[i] !== Math.max(x[i], 0)) bad++;
    expect(bad).toBe(0);
  });

  it('reluBackward passes the gradient where y > 0', async () => {
    const g = gpu();
    const dy = g.tensor([4], [1, 2, 3, 4]);
    const y = g.tensor([4], [0, 1, -1, 2]);
    expect(Array.from(await g.readF32(reluBackward(g, dy, y)))).toEqual([0, 2, 0, 4]);
  });

  it('keeps uniforms of several dispatches in one submit apart', async () => {
    const g = gpu();
    // Two relu dispatches with different sizes encoded before one submit: each must see its own n.
    const x = g.tensor([8], [-1, 2, -3, 4, -5, 6, -7, 8]);
    const y1 = g.zeros([8]);
    const xs = g.tensor([3], [-4, 5, -6]);
    const ys = g.zeros([3]);
    g.flush();
    // n = 8 then n = 3 with no upload between: if both saw the last uniform, y1[3..7] would stay 0.
    relu(g, x, y1);
    relu(g, xs, ys);
    expect(Array.from(await g.readF32(y1))).toEqual([0, 2, 0, 4, 0, 6, 0, 8]);
    expect(Array.from(await g.readF32(ys))).toEqual([0, 5, 0]);
  });

  it('reports WGSL compile errors with the op name', async () => {
    const g = gpu();
    const t = g.zeros([4]);
    g.run({ op: 'brokenOp', key: 'x', code: () => 'this is not wgsl', buffers: [t], workgroups: [1] });
    await expect(g.sync()).rejects.toThrow(/brokenOp/);
  });

  it('rejects use of released tensors', () => {
    const g = gpu();
    const t = g.zeros([4]);
    t.release();
    expect(() => relu(g, t)).toThrow(KernelError);
  });

  it('measures GPU time', async () => {
    const g = gpu();
    const x = g.zeros([1 << 16]);
    const y = g.empty([1 << 16]); // allocated outside: a poisoned empty() is a dispatch of its own
    const p = await g.profile(() => {
      relu(g, x, y);
    });
    expect(p.ms).toBeGreaterThanOrEqual(0);
    if (g.hasTimestamps) expect(p.ops.map((o) => o.op)).toEqual(['relu']);
  });

  it('turns a lost device into a catchable error, not a hang', async () => {
    const g = await createGpu();
    const t = g.tensor([4], [1, 2, 3, 4]);
    relu(g, t);
    g.device.destroy(); // what a driver reset looks like from here
    await expect(g.read(t)).rejects.toMatchObject({ code: 'DEVICE_LOST' });
    expect(() => g.zeros([2])).toThrow(/lost/);
    g.destroy();
  });

  it('names the adapters seen and the remedy when none matches', async () => {
    const err = await createGpu({ adapter: 'no such adapter 1234' }).catch((e) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect(err.code).toBe('NO_ADAPTER');
    expect(err.message).toMatch(/Adapters seen: /);
    expect(err.message).toMatch(/mesa-vulkan-drivers/);
  });

  it('binds buffers a kernel declares but does not read (explicit layouts, not auto)', async () => {
    const g = gpu();
    const unused = g.tensor([2], [5, 6]);
    const out = g.zeros([2]);
    const code = `
@group(0) @binding(0) var<storage, read> unused_: array<f32>;
@group(0) @binding(1) var<storage, read_write> out_: array<f32>;
@compute @workgroup_size(2)
fn main(@builtin(local_invocation_index) i: u32) { out_[i] = 7.0; }`;
    expect(bindGroupLayoutEntries(code)?.map((e) => e.buffer?.type)).toEqual([
      'read-only-storage',
      'storage',
    ]);
    g.run({ op: 'unusedBinding', key: 'x', code: () => code, buffers: [unused, out], workgroups: [1] });
    expect(Array.from(await g.readF32(out))).toEqual([7, 7]);
  });
});
