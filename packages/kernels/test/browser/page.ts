// The test page (bundled by browser-ops.test.ts with esbuild for a browser): runs the op checks on the
// browser's WebGPU adapter (WebGpuEngine over createGpu, that is navigator.gpu) and on the WebAssembly engine
// with two Web Worker threads, and leaves the results in `window.__dhta` for the test to read.
import { createGpu } from '../../src/gpu/context.js';
import { WebGpuEngine } from '../../src/gpu/engine.js';
import { WasmEngine } from '../../src/wasm/index.js';
import { OPS, type Op, type OpResult, runOpChecks } from './op-checks.js';

export interface EngineRun {
  /** The engine could not start (the message), else null. */
  error: string | null;
  description: string;
  results: OpResult[];
  ms: number;
}

export interface PageState {
  done: boolean;
  crossOriginIsolated: boolean;
  log: string[];
  engines: Record<string, EngineRun>;
}

const state: PageState = {
  done: false,
  crossOriginIsolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
  log: [],
  engines: {},
};
(globalThis as { __dhta?: PageState }).__dhta = state;

function log(message: string): void {
  state.log.push(message);
  console.log(message);
}

async function runEngine(
  name: string,
  open: () => Promise<{ engine: WebGpuEngine | WasmEngine; close: () => void }>,
): Promise<void> {
  const t0 = performance.now();
  const run: EngineRun = { error: null, description: '', results: [], ms: 0 };
  state.engines[name] = run;
  let handle: Awaited<ReturnType<typeof open>> | null = null;
  try {
    handle = await open();
    run.description = handle.engine.description;
    log(`${name}: ${run.description}`);
    await runOpChecks(handle.engine, only, (m) => log(`${name} ${m}`), run.results);
  } catch (err) {
    run.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    log(`${name}: ${run.error}`);
  } finally {
    handle?.close();
    run.ms = performance.now() - t0;
  }
}

// ?engines=webgpu,wasm&ops=matmul,conv2d: which engines and ops (default: all).
const query = new URLSearchParams(
  (globalThis as unknown as { location: { search: string } }).location.search,
);
const only: Op[] | null =
  query
    .get('ops')
    ?.split(',')
    .filter((o): o is Op => (OPS as readonly string[]).includes(o)) ?? null;

async function main(): Promise<void> {
  const which = query.get('engines')?.split(',') ?? ['webgpu', 'wasm'];
  if (which.includes('webgpu')) {
    await runEngine('webgpu', async () => {
      // As engine-ops.test.ts: every new tensor poisoned (NaN), every dispatch in error scopes.
      const gpu = await createGpu({ checkErrors: true, poison: true });
      return { engine: new WebGpuEngine(gpu), close: () => gpu.destroy() };
    });
  }
  if (which.includes('wasm')) {
    await runEngine('wasm', async () => {
      const engine = await WasmEngine.create({ threads: 2 });
      return { engine, close: () => engine.destroy() };
    });
  }
  state.done = true;
}

void main();
