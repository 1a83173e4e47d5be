// The WebAssembly engine's threads on a loaded machine: while a busy process competes for the cores, workers
// come late, are taken off their cores while they hold a chunk, and the engine changes how many threads take
// part; none of that may change a single bit of a result. (No timing is asserted: the benchmark,
// `dhta bench attack --busy 1`, measures speed.)
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeededRandom } from '../src/reference/index.js';
import { MR, NR, type Region, WasmCpu } from '../src/wasm/index.js';

/** A process that spins on one core and exits when its parent is gone (so none is ever left behind). */
function startBusyProcess(): Promise<ChildProcess> {
  const source =
    'const p = process.ppid; for (let i = 1; ; i++) if ((i & 0xffffff) === 0 && process.ppid !== p) process.exit(0);';
  const child = spawn(process.execPath, ['-e', source], { stdio: 'ignore', detached: true });
  return new Promise((ok, fail) => {
    child.once('spawn', () => ok(child));
    child.once('error', fail);
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    child.once('exit', () => ok());
    child.kill('SIGKILL');
  });
}

function random(rng: SeededRandom, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/** The bits of a result, to compare with toEqual (NaN-safe, -0 distinct from 0). */
function bits(a: Float32Array): Int32Array {
  return new Int32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

/** A new region full of NaN, so that an element that no chunk wrote shows (the stack reuses memory). */
function poisoned(cpu: WasmCpu, floats: number): Region {
  const r = cpu.alloc(floats);
  cpu.view(r).fill(Number.NaN);
  return r;
}

/**
 * Two routines through the engine: the GEMM (chunks of 2 B panels) and max pooling (chunks of planes, with
 * its argmax as i32), each on a fresh region, `rounds` times; the results of every round.
 */
function runRounds(cpu: WasmCpu, rounds: number): Int32Array[] {
  const rng = new SeededRandom(7);
  const K = 129;
  const mPanels = 8;
  const nPanels = 61; // odd: the last chunk is shorter
  const a = cpu.upload(random(rng, mPanels * MR * K));
  const b = cpu.upload(random(rng, nPanels * NR * K));
  const [planes, H, W] = [97, 12, 10];
  const x = cpu.upload(random(rng, planes * H * W));
  const out: Int32Array[] = [];
  for (let r = 0; r < rounds; r++) {
    const mark = cpu.mark();
    const c = poisoned(cpu, mPanels * MR * nPanels * NR);
    cpu.gemm(a, b, c, mPanels, nPanels, K);
    out.push(bits(cpu.read(c)));
    const y = poisoned(cpu, planes * (H / 2) * (W / 2));
    const argmax = poisoned(cpu, planes * (H / 2) * (W / 2));
    cpu.run('maxpool2', [x.byteOffset, y.byteOffset, argmax.byteOffset, H, W, H / 2, W / 2], planes);
    out.push(bits(cpu.read(y)), bits(cpu.read(argmax)));
    cpu.reset(mark);
  }
  return out;
}

describe('WebAssembly engine threads under load', () => {
  let busy: ChildProcess | undefined;
  let expected: Int32Array[];
  const engines = 4;
  const rounds = 80;

  beforeAll(async () => {
    const one = await WasmCpu.create({ threads: 1 });
    try {
      expected = runRounds(one, 1);
    } finally {
      one.destroy();
    }
    busy = await startBusyProcess();
  });
  afterAll(async () => {
    if (busy) await stop(busy);
  });

  for (const threads of [1, 2, 3]) {
    it(`gives the same bits with ${threads} thread(s) while a busy process runs`, async () => {
      let differing = 0;
      // Several engines: each starts with all its threads taking part, before it measures the load.
      for (let e = 0; e < engines; e++) {
        const cpu = await WasmCpu.create({ threads });
        try {
          const got = runRounds(cpu, rounds);
          expect(got.length).toBe(rounds * expected.length);
          for (let r = 0; r < rounds; r++) {
            for (let i = 0; i < expected.length; i++) {
              const g = got[r * expected.length + i];
              const want = expected[i];
              if (g.length !== want.length || g.some((v, j) => v !== want[j])) differing++;
            }
          }
        } finally {
          cpu.destroy();
        }
      }
      expect(differing, 'results that differ from one thread alone').toBe(0);
    });
  }
});
