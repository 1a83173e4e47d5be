import { KernelError } from '../errors.js';
import { BufferPool } from './pool.js';
import { type DType, shapeSize, Tensor } from './tensor.js';
import {
  describeAdapter,
  type GpuBackend,
  gpuEntry,
  isSoftwareAdapter,
  listAdapters,
  NO_ADAPTER_REMEDY,
  platformBackends,
} from './webgpu.js';
import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP } from './wgsl.js';

export interface GpuOptions {
  /** Dawn backend (Node only); default: the platform's preferred one. */
  backend?: GpuBackend;
  /** Adapter name as Dawn reports it (Node only); an unknown name lists the adapters seen. */
  adapter?: string;
  powerPreference?: GPUPowerPreference;
  /** Wrap every dispatch in validation error scopes so errors name the op (slower; on in tests). */
  checkErrors?: boolean;
  /** Fill every `empty()` tensor with NaN (f32) or 0xDEADBEEF (u32) so an unwritten element is caught. */
  poison?: boolean;
}

/** A scalar uniform: a plain number is a u32; floats and signed ints are tagged. */
export type UniformValue = number | { f32: number } | { i32: number };

/** One compute dispatch: what to run, on which buffers, with which uniforms. */
export interface Dispatch {
  /** Op name, used in error messages and profiles. */
  op: string;
  /** Pipeline cache key: everything that changes the WGSL text (the op name is prepended). */
  key: string;
  /** The WGSL source; called only on a cache miss. */
  code: () => string;
  /** Storage buffers in binding order 0..n-1; the uniform struct (if any) is bound at n. */
  buffers: Tensor[];
  uniforms?: UniformValue[];
  /** Workgroup counts; use `grid()` for more than 65535 workgroups. */
  workgroups: readonly [number, number?, number?];
}

export interface AdapterDescription {
  runtime: 'node' | 'browser';
  backend: GpuBackend | 'browser';
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isSoftware: boolean;
}

export interface ProfileEntry {
  op: string;
  ms: number;
}

const STORAGE_USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST
const UNIFORM_USAGE = 0x40 | 0x08; // UNIFORM | COPY_DST
const MAP_READ_USAGE = 0x01 | 0x08; // MAP_READ | COPY_DST
const QUERY_CAPACITY = 4096;

/** Fills a buffer with one 32-bit pattern (NaN for f32 tensors): see `GpuOptions.poison`. */
const POISON_SHADER = `
${declareBindings(
  [{ name: 'out_', access: 'read_write', type: 'u32' }],
  [
    { name: 'n', type: 'u32' },
    { name: 'pattern', type: 'u32' },
  ],
)}
@compute @workgroup_size(256)
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * 256u + lid;
  if (i < u.n) { out_[i] = u.pattern; }
}`;

/**
 * A WebGPU device with a buffer pool, a pipeline cache and batched submission. Dispatches are encoded into
 * one command encoder (one compute pass) until something needs the queue: a read, an upload, `flush()`.
 */
export class Gpu {
  readonly device: GPUDevice;
  readonly adapter: AdapterDescription;
  readonly limits: Record<string, number>;
  readonly features: string[];
  readonly hasTimestamps: boolean;
  readonly pool: BufferPool;
  readonly options: GpuOptions;

  private entry: GPU | null;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingUniforms: GPUBuffer[] = [];
  private readonly freeUniforms: GPUBuffer[] = [];
  private readonly checks: Promise<void>[] = [];
  private lostError: KernelError | null = null;
  private readonly lost: Promise<never>;
  private destroyed = false;
  private profiling: { querySet: GPUQuerySet; ops: string[]; results: ProfileEntry[] } | null = null;
  private dispatchCount = 0;
  private lastOp = '(none)';
  private readonly uncaptured: KernelError[] = [];

  constructor(entry: GPU, device: GPUDevice, adapter: AdapterDescription, options: GpuOptions) {
    this.entry = entry;
    this.device = device;
    this.adapter = adapter;
    this.options = options;
    const limits: Record<string, number> = {};
    for (const k in device.limits) limits[k] = (device.limits as unknown as Record<string, number>)[k];
    this.limits = limits;
    this.features = [...device.features].map(String).sort();
    this.hasTimestamps = device.features.has('timestamp-query');
    this.pool = new BufferPool(device, STORAGE_USAGE);
    this.lost = new Promise<never>((_, reject) => {
      device.lost.then((info) => {
        if (this.destroyed) return;
        this.lostError = new KernelError(
          'DEVICE_LOST',
          `the GPU device was lost (${info.reason}: ${info.message || 'no message'}). ` +
            'Create a new context with createGpu(); on a software driver this usually means out of memory.',
        );
        reject(this.lostError);
      });
    });
    this.lost.catch(() => {});
    device.addEventListener?.('uncapturederror', (ev: Event) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.uncaptured.push(
        new KernelError('VALIDATION', `WebGPU error in work ending with op ${this.lastOp}: ${e.message}`),
      );
    });
  }

  /** Number of dispatches encoded so far (for benchmarks and tests). */
  get dispatches(): number {
    return this.dispatchCount;
  }

  private assertUsable(): void {
    if (this.destroyed)
      throw new KernelError('DESTROYED', 'this Gpu context was destroyed; create a new one');
    if (this.lostError) throw this.lostError;
  }

  // ---- tensors -------------------------------------------------------------------------------------------

  /** A tensor with uninitialised contents (poisoned when `options.poison`). */
  empty(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    this.assertUsable();
    const size = shapeSize(shape);
    const maxBinding = this.limits['maxStorageBufferBindingSize'] ?? 134217728;
    if (size * 4 > maxBinding) {
      throw new KernelError(
        'OUT_OF_MEMORY',
        `a tensor of shape [${shape.join(', ')}] needs ${size * 4} bytes, over this device's largest storage ` +
          `binding (${maxBinding} bytes); split the work into smaller batches`,
      );
    }
    const t = new Tensor(this, this.pool.acquire(Math.max(4, size * 4)), shape, dtype);
    if (this.options.poison && size > 0) {
      // Encoded like any kernel (no upload, so no flush): poisoning does not split the caller's submit.
      this.run({
        op: 'poison',
        key: '',
        code: () => POISON_SHADER,
        buffers: [t],
        uniforms: [size, dtype === 'f32' ? 0x7fc00000 /* NaN */ : 0xdeadbeef],
        workgroups: grid(Math.ceil(size / 256)),
      });
    }
    return t;
  }

  /** A tensor holding `data` (converted to f32 or u32). */
  tensor(
    shape: readonly number[],
    data: Float32Array | Uint32Array | Float64Array | Int32Array | number[],
    dtype: DType = 'f32',
  ): Tensor {
    const size = shapeSize(shape);
    if (data.length !== size) {
      throw new KernelError(
        'SHAPE_MISMATCH',
        `tensor: shape [${shape.join(', ')}] has ${size} elements but ${data.length} values were given`,
      );
    }
    const t = this.empty(shape, dtype);
    if (size > 0) {
      const typed =
        dtype === 'f32'
          ? data instanceof Float32Array
            ? data
            : Float32Array.from(data as ArrayLike<number>)
          : data instanceof Uint32Array
            ? data
            : Uint32Array.from(data as ArrayLike<number>);
      this.write(t, typed);
    }
    return t;
  }

  /** A zero-filled tensor (cleared on the queue, in order with pending work). */
  zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = this.empty(shape, dtype);
    this.fill(t, 0);
    return t;
  }

  /** Fills a tensor with zeros (value 0) in queue order. */
  fill(t: Tensor, value: 0): void {
    this.assertUsable();
    void value;
    const enc = this.currentEncoder();
    this.endPass();
    enc.clearBuffer(t.buffer, 0, Math.ceil(t.byteLength / 4) * 4);
  }

  /** Writes CPU data into a tensor. Pending work is submitted first, so a reused buffer is never overwritten early. */
  write(t: Tensor, data: Float32Array | Uint32Array): void {
    this.assertUsable();
    t.assertLive('write');
    if (data.length > t.size) {
      throw new KernelError(
        'SHAPE_MISMATCH',
        `write: ${data.length} values do not fit a tensor of ${t.size}`,
      );
    }
    this.flush();
    this.device.queue.writeBuffer(t.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copies `src` into `dst` (same size), in queue order. */
  copy(src: Tensor, dst: Tensor): void {
    this.assertUsable();
    if (src.size !== dst.size) {
      throw new KernelError('SHAPE_MISMATCH', `copy: ${src.size} elements into a tensor of ${dst.size}`);
    }
    const enc = this.currentEncoder();
    this.endPass();
    if (src.size > 0) enc.copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, src.size * 4);
  }

  /** Reads a tensor back to the CPU (submits pending work). */
  async read(t: Tensor): Promise<Float32Array | Uint32Array> {
    this.assertUsable();
    t.assertLive('read');
    const bytes = Math.max(4, t.size * 4);
    const staging = this.device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: MAP_READ_USAGE });
    const enc = this.currentEncoder();
    this.endPass();
    enc.copyBufferToBuffer(t.buffer, 0, staging, 0, staging.size);
    this.flush();
    try {
      await this.guard(staging.mapAsync(0x0001 /* GPUMapMode.READ */));
      await this.settleChecks();
      const copy = staging.getMappedRange().slice(0, t.size * 4);
      staging.unmap();
      return t.dtype === 'f32' ? new Float32Array(copy) : new Uint32Array(copy);
    } finally {
      staging.destroy();
    }
  }

  async readF32(t: Tensor): Promise<Float32Array> {
    if (t.dtype !== 'f32') throw new KernelError('BAD_ARGUMENT', `readF32: tensor is ${t.dtype}`);
    return (await this.read(t)) as Float32Array;
  }

  async readU32(t: Tensor): Promise<Uint32Array> {
    if (t.dtype !== 'u32') throw new KernelError('BAD_ARGUMENT', `readU32: tensor is ${t.dtype}`);
    return (await this.read(t)) as Uint32Array;
  }

  // ---- dispatch ------------------------------------------------------------------------------------------

  private pipeline(d: Dispatch): GPUComputePipeline {
    const key = `${d.op}|${d.key}`;
    const cached = this.pipelines.get(key);
    if (cached) return cached;
    const code = d.code();
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code, label: d.op });
    // An explicit layout from the declarations: 'auto' would drop any binding the shader never reads, and
    // the bind group (built from the dispatch's buffers) would then fail to match it.
    const layout = bindGroupLayoutEntries(code);
    const pipeline = this.device.createComputePipeline({
      layout: layout
        ? this.device.createPipelineLayout({
            bindGroupLayouts: [this.device.createBindGroupLayout({ entries: layout, label: d.op })],
          })
        : 'auto',
      compute: { module, entryPoint: 'main' },
      label: d.op,
    });
    const scope = this.device.popErrorScope().then(async (err) => {
      if (!err) return;
      const info = await module.getCompilationInfo();
      const lines = info.messages
        .filter((m) => m.type === 'error')
        .map((m) => `line ${m.lineNum}:${m.linePos} ${m.message}`)
        .join('; ');
      throw new KernelError(
        'SHADER_COMPILE',
        `${d.op}: the WGSL kernel failed to build: ${lines || err.message}`,
      );
    });
    scope.catch(() => {});
    this.checks.push(scope);
    this.pipelines.set(key, pipeline);
    return pipeline;
  }

  private uniformBuffer(values: UniformValue[]): GPUBuffer {
    const bytes = Math.max(16, Math.ceil((values.length * 4) / 16) * 16);
    const data = new ArrayBuffer(bytes);
    const u32 = new Uint32Array(data);
    const f32 = new Float32Array(data);
    const i32 = new Int32Array(data);
    values.forEach((v, i) => {
      if (typeof v === 'number') {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
          throw new KernelError('BAD_ARGUMENT', `uniform ${i} = ${v} is not a u32; tag floats as {f32: x}`);
        }
        u32[i] = v;
      } else if ('f32' in v) f32[i] = v.f32;
      else i32[i] = v.i32;
    });
    // A fresh (or recycled, already-retired) buffer per dispatch: rewriting one uniform buffer between
    // dispatches of a single submit would make all of them see the last value.
    let buf = bytes === 256 ? this.freeUniforms.pop() : undefined;
    if (!buf) buf = this.device.createBuffer({ size: Math.max(256, bytes), usage: UNIFORM_USAGE });
    this.device.queue.writeBuffer(buf, 0, data);
    this.pendingUniforms.push(buf);
    return buf;
  }

  /** Encodes one compute dispatch. */
  run(d: Dispatch): void {
    this.assertUsable();
    for (const b of d.buffers) b.assertLive(d.op);
    const [x, y = 1, z = 1] = d.workgroups;
    const maxWg = this.limits['maxComputeWorkgroupsPerDimension'] ?? 65535;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new KernelError(
        'BAD_ARGUMENT',
        `${d.op}: dispatch (${x}, ${y}, ${z}) exceeds ${maxWg} workgroups per dimension`,
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    const pipeline = this.pipeline(d);
    // Uniform buffers are written with queue.writeBuffer, which lands before the next submit: a buffer
    // that pending work still reads must not be recycled, so recycling happens only after completion.
    const entries: GPUBindGroupEntry[] = d.buffers.map((t, i) => ({
      binding: i,
      resource: { buffer: t.buffer, offset: 0, size: Math.ceil(t.byteLength / 4) * 4 },
    }));
    if (d.uniforms && d.uniforms.length > 0) {
      entries.push({ binding: d.buffers.length, resource: { buffer: this.uniformBuffer(d.uniforms) } });
    }
    const check = this.options.checkErrors;
    if (check) this.device.pushErrorScope('validation');
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries,
      label: d.op,
    });
    const pass = this.currentPass(d.op);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiling) this.endPass();
    this.dispatchCount++;
    this.lastOp = d.op;
    if (check) {
      const scope = this.device.popErrorScope().then((err) => {
        if (err) throw new KernelError('VALIDATION', `${d.op}: ${err.message}`);
      });
      scope.catch(() => {});
      this.checks.push(scope);
    }
  }

  private currentEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private currentPass(op: string): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    const enc = this.currentEncoder();
    if (this.profiling) {
      const p = this.profiling;
      if (p.ops.length * 2 + 2 > QUERY_CAPACITY) {
        throw new KernelError(
          'BAD_ARGUMENT',
          `profile: more than ${QUERY_CAPACITY / 2} dispatches in one profile`,
        );
      }
      const i = p.ops.length;
      p.ops.push(op);
      this.pass = enc.beginComputePass({
        timestampWrites: {
          querySet: p.querySet,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        },
      });
    } else {
      this.pass = enc.beginComputePass();
    }
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Submits the encoded work (no wait). */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    const cmd = this.encoder.finish();
    this.encoder = null;
    this.device.queue.submit([cmd]);
    const retired = this.pendingUniforms;
    this.pendingUniforms = [];
    if (retired.length > 0) {
      this.device.queue.onSubmittedWorkDone().then(
        () => {
          for (const b of retired) {
            if (b.size === 256 && this.freeUniforms.length < 1024) this.freeUniforms.push(b);
            else b.destroy();
          }
        },
        () => {},
      );
    }
  }

  /** Submits pending work and waits until the GPU has finished it; surfaces errors of earlier dispatches. */
  async sync(): Promise<void> {
    this.assertUsable();
    this.flush();
    await this.guard(this.device.queue.onSubmittedWorkDone());
    await this.settleChecks();
  }

  private async settleChecks(): Promise<void> {
    const pending = this.checks.splice(0);
    let first: unknown = null;
    // In encoding order, so the error reported is the earliest one (a failed shader before its dispatch).
    for (const p of pending) {
      try {
        await p;
      } catch (err) {
        first ??= err;
      }
    }
    const uncaptured = this.uncaptured.splice(0);
    if (first) throw first;
    if (uncaptured.length > 0) throw uncaptured[0];
  }

  /** Races a GPU promise against device loss, so a lost device never hangs the caller. */
  private guard<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.lost]);
  }

  // ---- timing --------------------------------------------------------------------------------------------

  /**
   * Runs `fn` (which encodes work) and measures the GPU time of its dispatches: timestamp queries when the
   * device has them (one pass per dispatch), else wall-clock time from submit to completion.
   */
  async profile(
    fn: () => void | Promise<void>,
  ): Promise<{ ms: number; source: 'timestamp' | 'wall'; ops: ProfileEntry[] }> {
    await this.sync();
    if (!this.hasTimestamps) {
      const t0 = performance.now();
      await fn();
      await this.sync();
      return { ms: performance.now() - t0, source: 'wall', ops: [] };
    }
    const querySet = this.device.createQuerySet({ type: 'timestamp', count: QUERY_CAPACITY });
    this.profiling = { querySet, ops: [], results: [] };
    try {
      await fn();
      this.endPass();
      const { ops } = this.profiling;
      const n = ops.length * 2;
      if (n === 0) return { ms: 0, source: 'timestamp', ops: [] };
      const resolveBuf = this.device.createBuffer({
        size: n * 8,
        usage: 0x200 | 0x04 /* QUERY_RESOLVE | COPY_SRC */,
      });
      const staging = this.device.createBuffer({ size: n * 8, usage: MAP_READ_USAGE });
      const enc = this.currentEncoder();
      enc.resolveQuerySet(querySet, 0, n, resolveBuf, 0);
      enc.copyBufferToBuffer(resolveBuf, 0, staging, 0, n * 8);
      this.profiling = null;
      this.flush();
      await this.guard(staging.mapAsync(0x0001));
      await this.settleChecks();
      const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      resolveBuf.destroy();
      const entries: ProfileEntry[] = ops.map((op, i) => ({
        op,
        ms: Number(stamps[2 * i + 1] - stamps[2 * i]) / 1e6,
      }));
      return { ms: entries.reduce((s, e) => s + Math.max(0, e.ms), 0), source: 'timestamp', ops: entries };
    } finally {
      this.profiling = null;
      querySet.destroy();
    }
  }

  // ---- lifetime ------------------------------------------------------------------------------------------

  /** Releases the device so the process can exit. The context is unusable afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.endPass();
    this.encoder = null;
    this.destroyed = true;
    this.pool.trim();
    for (const b of this.freeUniforms) b.destroy();
    this.freeUniforms.length = 0;
    this.pipelines.clear();
    this.device.destroy();
    this.entry = null;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Keeps the dawn instance alive as long as the context (dawn shuts down when it is collected). */
  get gpuEntry(): GPU | null {
    return this.entry;
  }
}

/**
 * The group-0 layout a shader declares (`@group(0) @binding(i) var<storage, read|read_write>` or
 * `var<uniform>`), or null when the declarations do not form bindings 0..n-1.
 */
export function bindGroupLayoutEntries(code: string): GPUBindGroupLayoutEntry[] | null {
  const entries: GPUBindGroupLayoutEntry[] = [];
  const re = /@group\(0\)\s*@binding\((\d+)\)\s*var<\s*(storage\s*,\s*(read_write|read)|uniform)\s*>/g;
  for (const m of code.matchAll(re)) {
    const binding = Number(m[1]);
    const type: GPUBufferBindingType =
      m[2] === 'uniform' ? 'uniform' : m[3] === 'read' ? 'read-only-storage' : 'storage';
    entries.push({ binding, visibility: 0x4 /* GPUShaderStage.COMPUTE */, buffer: { type } });
  }
  entries.sort((a, b) => a.binding - b.binding);
  const dense = entries.length > 0 && entries.every((e, i) => e.binding === i);
  return dense ? entries : null;
}

/** Splits a 1-D workgroup count over x and y when it exceeds the per-dimension limit. */
export function grid(workgroups: number, maxPerDim = 65535): [number, number] {
  if (workgroups <= maxPerDim) return [Math.max(workgroups, 0), 1];
  const y = Math.ceil(workgroups / maxPerDim);
  return [Math.ceil(workgroups / y), y];
}

/** Opens a GPU: adapter (with its own limits and timestamp-query when present) and device. */
export async function createGpu(options: GpuOptions = {}): Promise<Gpu> {
  const { gpu, runtime } = await gpuEntry(options.backend, options.adapter);
  let adapter: GPUAdapter | null = null;
  let startError: unknown = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  } catch (err) {
    startError = err;
  }
  if (!adapter) {
    const seen = runtime === 'node' ? await listAdapters() : [];
    const list = seen.length > 0 ? seen.map((s) => `${s.backend}: ${s.description}`).join('; ') : 'none';
    const asked = [
      options.backend && `backend ${options.backend}`,
      options.adapter && `adapter "${options.adapter}"`,
    ]
      .filter(Boolean)
      .join(', ');
    const why = startError instanceof Error ? ` (${startError.message.split('\n')[0]})` : '';
    throw new KernelError(
      'NO_ADAPTER',
      `no WebGPU adapter found${asked ? ` for ${asked}` : ''}${why}. Adapters seen: ${list}. ${NO_ADAPTER_REMEDY}`,
    );
  }
  const requiredFeatures: GPUFeatureName[] = [];
  // timestamp-query for GPU timing; subgroups lets kernels share loads across lanes (conv2d's row-run kernel).
  for (const f of ['timestamp-query', 'subgroups'] as GPUFeatureName[])
    if (adapter.features.has(f)) requiredFeatures.push(f);
  const requiredLimits: Record<string, number> = {};
  for (const k of [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxComputeWorkgroupSizeZ',
    'maxComputeWorkgroupsPerDimension',
    'maxStorageBuffersPerShaderStage',
  ]) {
    const v = (adapter.limits as unknown as Record<string, number>)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'dhta' });
  const info = adapter.info;
  const description: AdapterDescription = {
    runtime,
    backend: runtime === 'browser' ? 'browser' : (options.backend ?? platformBackends()[0]),
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: describeAdapter(info),
    isSoftware: isSoftwareAdapter(info),
  };
  return new Gpu(gpu, device, description, options);
}
