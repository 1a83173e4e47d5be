// The page's worker: opens the model on the chosen engine (WebGPU through navigator.gpu, or the WebAssembly
// engine with its helper threads), then encodes and attacks on request. The same packages as the CLI, so a
// query gives the numbers `dhta attack` gives on the same engine kind.
import { runAttack } from '@dhta/attack';
import { createGpu, type Engine, type Gpu, WebGpuEngine } from '@dhta/kernels';
import { WasmEngine } from '@dhta/kernels/wasm';
import { createNetwork, type Network, parseSpec, readSafetensors, validateWeights } from '@dhta/models';
import type { FromWorker, ToWorker } from './messages.js';

interface WorkerScope {
  onmessage: ((event: { data: ToWorker }) => void) | null;
  postMessage(message: FromWorker, transfer?: ArrayBuffer[]): void;
}
const scope = globalThis as unknown as WorkerScope;

let net: Network | null = null;
let gpu: Gpu | null = null;

class Stopped extends Error {}

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  scope.postMessage(message, transfer);
}

function close(): void {
  net?.destroy();
  net = null;
  gpu?.destroy();
  gpu = null;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok)
    throw new Error(`${url}: HTTP ${r.status} (run \`dhta serve\`, which prepares the model's files)`);
  return new Uint8Array(await r.arrayBuffer());
}

/** auto: WebGPU on a hardware adapter, else the WebAssembly engine (as the CLI's --engine auto). */
async function openEngine(choice: 'auto' | 'webgpu' | 'wasm', threads: number | null): Promise<Engine> {
  if (choice !== 'wasm') {
    try {
      gpu = await createGpu();
    } catch (e) {
      if (choice === 'webgpu') throw e;
      gpu = null;
    }
    if (gpu && (choice === 'webgpu' || !gpu.adapter.isSoftware)) return new WebGpuEngine(gpu);
    gpu?.destroy();
    gpu = null;
  }
  return WasmEngine.create(threads ? { threads } : {});
}

async function handle(m: ToWorker): Promise<void> {
  if (m.type === 'open') {
    close();
    const [specBytes, weightBytes] = await Promise.all([fetchBytes(m.specUrl), fetchBytes(m.weightsUrl)]);
    const spec = parseSpec(new TextDecoder().decode(specBytes), m.specUrl);
    const { weights } = readSafetensors(weightBytes, m.weightsUrl, { finite: true });
    validateWeights(spec, weights, m.weightsUrl);
    const engine = await openEngine(m.engine, m.threads);
    net = createNetwork(engine, spec, weights, { ownEngine: true });
    post({
      type: 'opened',
      id: m.id,
      engine: engine.kind,
      description: engine.description,
      bits: net.bits,
    });
    return;
  }
  if (!net) throw new Error('no model is open');
  if (m.type === 'encode') {
    const t0 = performance.now();
    const { codes, features } = await net.encode(m.pixels, m.n);
    post({ type: 'encoded', id: m.id, codes, features, seconds: (performance.now() - t0) / 1000 }, [
      codes.buffer as ArrayBuffer,
      features.buffer as ArrayBuffer,
    ]);
    return;
  }
  const s = m.settings;
  try {
    const out = await runAttack(net, m.pixels, m.n, m.anchors ?? undefined, {
      method: s.method,
      iterations: s.iterations,
      eps: s.eps,
      epsSpace: s.epsSpace,
      seed: s.seed,
      queryIds: m.queryIds,
      progressEvery: s.progressEvery,
      onProgress: (p) => {
        if (Atomics.load(m.stop, 0) !== 0) throw new Stopped('stopped');
        post({
          type: 'progress',
          id: m.id,
          iteration: p.iteration,
          iterations: p.iterations,
          features: p.features.slice(0, net!.bits),
          meanDistance: p.meanDistance,
          queryIterationsPerSecond: p.queryIterationsPerSecond,
        });
      },
    });
    post(
      {
        type: 'attacked',
        id: m.id,
        adversarial: out.adversarial,
        codes: out.codes,
        anchors: out.anchors,
        iterations: out.iterations,
        seconds: out.seconds,
      },
      [out.adversarial.buffer as ArrayBuffer],
    );
  } catch (e) {
    if (e instanceof Stopped) post({ type: 'stopped', id: m.id });
    else throw e;
  }
}

// One request at a time, in order (the page waits for each answer).
let queue: Promise<void> = Promise.resolve();
scope.onmessage = (event) => {
  const m = event.data;
  queue = queue.then(() =>
    handle(m).catch((e: unknown) => {
      post({ type: 'error', id: m.id, message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    }),
  );
};
