// The WebAssembly engine: the Engine op set (../engine.ts) on the CPU, over one WasmCpu (runtime.ts). Tensors
// live in its linear memory, in blocks of a heap with size classes and free lists that sits at the bottom of
// the WasmCpu stack; ops put their scratch (im2col panels, GEMM outputs, index tables) on the stack above the
// heap's top and pop it before they return. Products go through the packed GEMM core (cpu.wat.ts) with
// operands packed by the gather routines; a weight's packed panels are kept with the tensor and repacked only
// when the tensor was written since (a version number that every op bumps on the tensors it writes).
// The LSTM's gate math, the attack's L2 step with its clamps, the SGD step and the 2x2 pool's backward are
// routines of the module too (f32x4, on the threads); the other element-wise ops and the reductions are
// plain loops over the memory in float32 arithmetic (Math.fround where a step's rounding matters). The LSTM's
// weight gradients are computed when first used (Deferred). Every result of an object is computed in a fixed
// order of its own: the same bits in any batch and on any thread count.
import type {
  Engine,
  EngineAttackProjectOptions,
  EngineConvOptions,
  EngineDType,
  EngineLstmForward,
  EngineLstmGradients,
  EngineLstmWeights,
  EngineMatmulOptions,
  EngineTensor,
} from '../engine.js';
import { PAIRWISE_CHUNK } from '../engine.js';
import { argError, KernelError, shapeError } from '../errors.js';
import { conv2dGeometry } from '../ops/conv2d.js';
import { pcgHash } from '../reference/random.js';
import { MR, NR } from './cpu.wat.js';
import {
  backwardInputGeometry,
  conv2dBackwardInputDirectInto,
  conv2dBackwardInputInto,
  conv2dBackwardWeightInto,
  conv2dForwardInto,
  convRowsApplies,
  directBackwardInput,
  directGeometry,
  f32Bits,
  gemmGathered,
  maxPool2dBackwardInto,
  maxPool2dInto,
  maxPool2dShape,
  type PackedMatrix,
  packedFloats,
  packFlippedInto,
  packInto,
  sgdInto,
  storeProduct,
  sumChannelsInto,
  type WinogradTile,
  winogradApplies,
  winogradComponents,
  winogradConv,
  winogradTile,
  winogradWeightsOnCpu,
} from './ops.js';
import { MAX_MEMORY_BYTES, type Region, WasmCpu } from './runtime.js';

const fround = Math.fround;

/**
 * Panels (floats) above which a product's B operand is gathered on the fly instead of packed (see gathersB):
 * 16M floats, 64 MiB.
 */
const GATHER_B_FLOATS = 2 ** 24;

// ---- the heap ---------------------------------------------------------------------------------------------

/** Bytes of the smallest block (one cache line); every block is a whole number of them. */
const GRANULE = 64;

/** The block size for a request: 64-byte granules, rounded up to within 1/8 of a power of two. */
export function heapSizeClass(bytes: number): number {
  let g = Math.max(1, Math.ceil(bytes / GRANULE));
  if (g > 8) {
    const step = 2 ** (Math.floor(Math.log2(g)) - 3);
    g = Math.ceil(g / step) * step;
  }
  return g * GRANULE;
}

interface Block {
  readonly offset: number;
  readonly bytes: number;
  free: boolean;
}

/**
 * Blocks of the WasmCpu memory by size class, taken from the stack top when no free block of the class is
 * left. A free block at the top goes back to the stack (so after everything is released, the memory is one
 * free stack again). Allocations happen only between ops' scratch phases: the stack top is the heap's top.
 */
class Heap {
  private topBytes: number;
  private readonly free = new Map<number, Set<Block>>();
  private readonly byEnd = new Map<number, Block>();
  private freeTotal = 0;

  constructor(private readonly cpu: WasmCpu) {
    this.topBytes = cpu.mark();
  }

  get top(): number {
    return this.topBytes;
  }

  /** Bytes of blocks that are free but not yet back on the stack. */
  get freeBytes(): number {
    return this.freeTotal;
  }

  alloc(bytes: number): Block {
    const size = heapSizeClass(bytes);
    const list = this.free.get(size);
    if (list && list.size > 0) {
      const b = list.values().next().value as Block;
      list.delete(b);
      b.free = false;
      this.freeTotal -= size;
      return b;
    }
    if (this.cpu.mark() !== this.topBytes) {
      throw new KernelError(
        'BAD_ARGUMENT',
        'WasmEngine: a tensor was allocated while an op held scratch memory (an internal error; please report it)',
      );
    }
    const r = this.cpu.alloc(size / 4);
    const b: Block = { offset: r.byteOffset, bytes: size, free: false };
    this.topBytes = r.byteOffset + size;
    this.byEnd.set(this.topBytes, b);
    return b;
  }

  release(b: Block): void {
    if (b.free) return;
    b.free = true;
    this.freeTotal += b.bytes;
    let list = this.free.get(b.bytes);
    if (!list) {
      list = new Set();
      this.free.set(b.bytes, list);
    }
    list.add(b);
    // Give free blocks at the top back to the stack (not while an op holds scratch above the heap).
    if (this.cpu.mark() !== this.topBytes) return;
    let top = this.byEnd.get(this.topBytes);
    if (!top?.free) return;
    while (top?.free) {
      this.free.get(top.bytes)?.delete(top);
      this.freeTotal -= top.bytes;
      this.byEnd.delete(this.topBytes);
      this.topBytes = top.offset;
      top = this.byEnd.get(this.topBytes);
    }
    this.cpu.reset(this.topBytes);
  }
}

// ---- tensors ----------------------------------------------------------------------------------------------

interface Pack {
  version: number;
  block: Block;
  matrix: PackedMatrix;
}

/**
 * Outputs whose computation waits until one of them is used (read, written, or an argument of an op): the
 * LSTM's weight gradients, which an attack never reads. Their inputs must not change meanwhile: a write to
 * or release of an input runs the computation first; releasing every output drops it.
 */
interface Deferred {
  state: 'pending' | 'done' | 'dropped';
  outputs: Set<Storage>;
  inputs: Storage[];
  run: () => void;
  /** Frees what the computation kept (after it ran or was dropped). */
  cleanup: () => void;
}

/** A tensor's memory, shared by its reshaped views, with what the engine caches about its contents. */
class Storage {
  /** Bumped by every op that writes the memory: packed forms of an older version are stale. */
  version = 0;
  released = false;
  /** Packed GEMM panels of this memory, by layout. */
  packs: Map<string, Pack> | undefined;
  /** Layouts this memory was used in, with its version then: packed for keeps at the second unchanged use. */
  seen: Map<string, number> | undefined;
  /** Contents not computed yet (WasmEngine.defer): computed before the memory is read or written. */
  pending: Deferred | undefined;
  /** Deferred computations that read this memory: run before it is written or freed. */
  readers: Set<Deferred> | undefined;

  constructor(
    readonly engine: WasmEngine,
    readonly block: Block,
  ) {}
}

function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new KernelError(
        'BAD_ARGUMENT',
        `tensor shape [${shape.join(', ')}]: dimensions must be integers >= 0`,
      );
    }
    n *= d;
  }
  return n;
}

function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * A tensor of the WebAssembly engine: a block of its memory plus shape and dtype. `reshape` gives a view of
 * the same memory; releasing the tensor or any view of it frees the memory (and retires every view of it), as
 * the WebGPU engine's views do: model code hands out reshaped outputs, and the caller's release must free them.
 */
export class WasmTensor implements EngineTensor {
  readonly shape: readonly number[];
  readonly size: number;
  readonly dtype: EngineDType;
  /** @internal */
  constructor(
    readonly storage: Storage,
    shape: readonly number[],
    dtype: EngineDType,
  ) {
    this.shape = Object.freeze([...shape]);
    this.size = shapeSize(shape);
    this.dtype = dtype;
  }

  get engine(): WasmEngine {
    return this.storage.engine;
  }

  /** Byte address of element 0 in the engine's memory. */
  get byteOffset(): number {
    return this.storage.block.offset;
  }

  /** The tensor's elements as a region of the engine's memory. */
  get region(): Region {
    return { byteOffset: this.storage.block.offset, floats: this.size };
  }

  get isReleased(): boolean {
    return this.storage.released;
  }

  reshape(shape: readonly number[]): WasmTensor {
    if (this.isReleased) throw new KernelError('BAD_ARGUMENT', 'reshape: the tensor was released');
    const n = shapeSize(shape);
    if (n !== this.size) {
      throw new KernelError(
        'SHAPE_MISMATCH',
        `reshape: a tensor of ${this.size} elements ${shapeString(this.shape)} cannot become ${shapeString(shape)} (${n})`,
      );
    }
    return new WasmTensor(this.storage, shape, this.dtype);
  }

  release(): void {
    if (this.storage.released) return;
    this.storage.engine.freeStorage(this.storage);
  }
}

// ---- the engine -------------------------------------------------------------------------------------------

/** A matrix operand of a product: `count` lines (rows of op(A), columns of op(B)) of K values. */
interface Operand {
  t: WasmTensor;
  /** Element offset of line 0, step 0. */
  offset: number;
  count: number;
  K: number;
  /** Elements between lines and between steps. */
  qStride: number;
  kStride: number;
  /**
   * 'force': keep the packed form now (a weight used at every step); 'auto': from its second use unchanged;
   * 'never': an activation that is read once.
   */
  cache: 'auto' | 'force' | 'never';
  /**
   * Conv weights [O, C, KK] read as their flipped kernel (lines c, steps (o, t) from w[o, c, KK-1-t]; the
   * strides are then unused): the input gradient's A operand (packFlippedInto).
   */
  flip?: { C: number; KK: number };
  /**
   * 3x3 conv weights [O, C, 3, 3] as the 16 Winograd F(2x2, 3x3) kernels or the 36 of F(4x4, 3x3) (tile;
   * winogradWeights; flipped: those of
   * the input gradient): count and K are then M and K of each of the 16 products.
   */
  winograd?: { O: number; C: number; flipped: boolean; tile: WinogradTile };
}

/** C element (m, n) of a product lies at c0 + m * rowStride + n * colStride of the f32 memory. */
type ProductSink = (
  c: Region,
  c0: number,
  rowStride: number,
  colStride: number,
  swapped: boolean,
  ldc: number,
) => void;

function checkFinite(op: string, name: string, value: number): void {
  if (!Number.isFinite(value)) throw argError(op, `${name} must be a finite number, found ${value}`);
}

function checkPositiveInt(op: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1)
    throw argError(op, `${name} must be a positive integer, found ${value}`);
}

function checkSameSize(op: string, a: [string, WasmTensor], b: [string, WasmTensor]): void {
  if (a[1].size !== b[1].size) {
    throw shapeError(
      op,
      `${a[0]} and ${b[0]} of equal size`,
      `${shapeString(a[1].shape)} (${a[1].size}) and ${shapeString(b[1].shape)} (${b[1].size})`,
    );
  }
}

/** A written tensor must not share memory with the given others (the GPU engine refuses it too). */
function checkDistinct(op: string, written: [string, WasmTensor], ...others: [string, WasmTensor][]): void {
  for (const [name, t] of others) {
    if (t.storage === written[1].storage) {
      throw argError(op, `${written[0]} and ${name} must be different tensors (they share memory)`);
    }
  }
}

function checkRows(op: string, delta: WasmTensor, rows: number): void {
  if (!Number.isInteger(rows) || rows < 0 || (rows === 0 ? delta.size !== 0 : delta.size % rows !== 0)) {
    throw argError(
      op,
      `rows must be a non-negative integer that divides delta's ${delta.size} elements ` +
        `(shape ${shapeString(delta.shape)}), found ${rows}`,
    );
  }
}

interface ProjectBox {
  channels: number;
  planeSize: number;
  lo: Float32Array;
  hi: Float32Array;
  eps: Float32Array;
}

function projectBox(op: string, delta: WasmTensor, o: EngineAttackProjectOptions): ProjectBox {
  const { channels, planeSize, lo, hi, eps } = o;
  checkPositiveInt(op, 'channels', channels);
  checkPositiveInt(op, 'planeSize', planeSize);
  if (delta.size % (channels * planeSize) !== 0) {
    throw argError(
      op,
      `delta's ${delta.size} elements (shape ${shapeString(delta.shape)}) are not rows of ` +
        `channels * planeSize = ${channels} * ${planeSize}`,
    );
  }
  if (lo.length !== channels || hi.length !== channels) {
    throw argError(
      op,
      `lo and hi need one value per channel (${channels}), found ${lo.length} and ${hi.length}`,
    );
  }
  if (typeof eps !== 'number' && eps.length !== channels) {
    throw argError(
      op,
      `eps needs one value per channel (${channels}) or one number, found ${eps.length} values`,
    );
  }
  const box: ProjectBox = {
    channels,
    planeSize,
    lo: new Float32Array(channels),
    hi: new Float32Array(channels),
    eps: new Float32Array(channels),
  };
  for (let c = 0; c < channels; c++) {
    if (!(lo[c] <= hi[c])) throw argError(op, `lo[${c}] (${lo[c]}) must not exceed hi[${c}] (${hi[c]})`);
    const e = typeof eps === 'number' ? eps : eps[c];
    if (!(e >= 0) || !Number.isFinite(e)) throw argError(op, `eps must be a finite number >= 0, found ${e}`);
    box.lo[c] = lo[c];
    box.hi[c] = hi[c];
    box.eps[c] = e;
  }
  return box;
}

/** The LSTM's sizes, read off x [N, T, I] and the weights (PyTorch's layout), every shape checked. */
function lstmDims(
  op: string,
  x: WasmTensor,
  w: { wIh: WasmTensor; wHh: WasmTensor; bIh: WasmTensor; bHh: WasmTensor },
) {
  if (x.shape.length !== 3) throw shapeError(op, 'x of shape [N, T, I]', shapeString(x.shape));
  const [N, T, I] = x.shape;
  if (w.wHh.shape.length !== 2 || w.wHh.shape[0] !== 4 * w.wHh.shape[1]) {
    throw shapeError(op, 'wHh of shape [4H, H]', shapeString(w.wHh.shape));
  }
  const H = w.wHh.shape[1];
  for (const [name, v] of [
    ['N (batch)', N],
    ['T (time steps)', T],
    ['I (input features)', I],
    ['H (hidden size)', H],
  ] as const) {
    if (v < 1) throw argError(op, `${name} must be at least 1, found ${v}`);
  }
  const expect = (name: string, t: WasmTensor, shape: number[]) => {
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw shapeError(op, `${name} of shape ${shapeString(shape)}`, shapeString(t.shape));
    }
  };
  expect('wIh', w.wIh, [4 * H, I]);
  expect('bIh', w.bIh, [4 * H]);
  expect('bHh', w.bHh, [4 * H]);
  return { N, T, I, H, expect };
}

/** An LSTM state: [N, H], or PyTorch's [1, N, H] (one layer). */
function checkState(op: string, name: string, t: WasmTensor, N: number, H: number): void {
  const ok =
    t.shape.length === 2
      ? t.shape[0] === N && t.shape[1] === H
      : t.shape.length === 3 && t.shape[0] === 1 && t.shape[1] === N && t.shape[2] === H;
  if (!ok) throw shapeError(op, `${name} of shape [${N}, ${H}] (or [1, ${N}, ${H}])`, shapeString(t.shape));
}

/** d tanh(t) / dt = 1 - tanh(t)^2 as 4e / (1 + e)^2, e = exp(-2|t|): no cancellation when saturated. */
function tanhSlope(t: number): number {
  const e = Math.exp(-2 * Math.abs(t));
  const onePlus = 1 + e;
  return (4 * e) / (onePlus * onePlus);
}

/**
 * Batch rows per chunk of the LSTM's gate routines: at least ~2048 units, so that a step's gates of a small
 * batch run on one thread (a thread hand-off costs more than they do).
 */
function lstmRowsPerChunk(H: number): number {
  return Math.max(1, Math.ceil(2048 / H));
}

export interface WasmEngineOptions {
  /** Threads, 1 to 16 (default: the host's logical CPUs, at most 16). */
  threads?: number;
  /**
   * A product's B operand whose packed panels would take more floats than this is read in place, panel by
   * panel, instead of packed (and kept) beside its tensor (default 2^24, 64 MiB: VGG-11's fc6). The results
   * are the same bits either way.
   */
  gatherBFloats?: number;
}

export class WasmEngine implements Engine {
  readonly kind = 'wasm' as const;
  readonly software = true;
  readonly maxTensorBytes = MAX_MEMORY_BYTES;
  readonly cpu: WasmCpu;
  private readonly heap: Heap;
  private destroyed = false;

  private readonly gatherBFloats: number;

  private constructor(cpu: WasmCpu, gatherBFloats: number) {
    this.cpu = cpu;
    this.heap = new Heap(cpu);
    this.gatherBFloats = gatherBFloats;
  }

  /** Assembles the WebAssembly module (once per process) and starts the threads. */
  static async create(options: WasmEngineOptions = {}): Promise<WasmEngine> {
    const gather = options.gatherBFloats ?? GATHER_B_FLOATS;
    if (!(gather >= 0)) {
      throw new KernelError(
        'BAD_ARGUMENT',
        `WasmEngine: gatherBFloats must be a number >= 0, found ${gather}`,
      );
    }
    return new WasmEngine(await WasmCpu.create({ threads: options.threads }), gather);
  }

  get threads(): number {
    return this.cpu.threads;
  }

  get description(): string {
    const n = this.cpu.threads;
    return `WebAssembly SIMD, ${n} CPU thread${n === 1 ? '' : 's'}`;
  }

  /** MAX_MEMORY_BYTES less the bytes of live tensors, cached weight panels and the engine's own control block. */
  get memoryBytesLeft(): number {
    return MAX_MEMORY_BYTES - (this.heap.top - this.heap.freeBytes);
  }

  // ---- tensors ----------------------------------------------------------------------------------------------

  private assertLive(op: string): void {
    if (this.destroyed) throw new KernelError('DESTROYED', `${op}: the WebAssembly engine was destroyed`);
  }

  /** One of this engine's live tensors, of the given dtype (null: any). */
  private t(x: EngineTensor, op: string, name: string, dtype: EngineDType | null = 'f32'): WasmTensor {
    this.assertLive(op);
    if (!(x instanceof WasmTensor) || x.engine !== this) {
      throw new KernelError(
        'BAD_ARGUMENT',
        `${op}: ${name} is a tensor of another engine; the WebAssembly engine takes only its own tensors`,
      );
    }
    if (x.isReleased) throw new KernelError('BAD_ARGUMENT', `${op}: ${name} was released and cannot be used`);
    if (dtype && x.dtype !== dtype) throw argError(op, `${name} must be a ${dtype} tensor, found ${x.dtype}`);
    if (x.storage.pending) this.settle(x.storage.pending);
    return x;
  }

  /**
   * Registers a deferred computation of `outputs` from `inputs` (see Deferred). Call with no scratch held;
   * it runs at the start of an op that uses an output, or when an input is written or released.
   */
  private defer(outputs: WasmTensor[], inputs: WasmTensor[], run: () => void, cleanup: () => void): void {
    const d: Deferred = {
      state: 'pending',
      outputs: new Set(outputs.map((t) => t.storage)),
      inputs: inputs.map((t) => t.storage),
      run,
      cleanup,
    };
    for (const s of d.outputs) s.pending = d;
    for (const s of d.inputs) {
      s.readers ??= new Set();
      s.readers.add(d);
    }
  }

  private detach(d: Deferred): void {
    for (const s of d.outputs) if (s.pending === d) s.pending = undefined;
    for (const s of d.inputs) s.readers?.delete(d);
  }

  /** Runs a deferred computation now (once). */
  private settle(d: Deferred): void {
    if (d.state !== 'pending') return;
    d.state = 'done';
    this.detach(d);
    try {
      d.run();
    } finally {
      d.cleanup();
    }
  }

  /** Runs the deferred computations that read this memory, before it changes or is freed. */
  private settleReaders(s: Storage): void {
    if (s.readers?.size) for (const d of [...s.readers]) this.settle(d);
  }

  private opt(x: EngineTensor | null | undefined, op: string, name: string): WasmTensor | null {
    return x ? this.t(x, op, name) : null;
  }

  private alloc(shape: readonly number[], dtype: EngineDType, op: string): WasmTensor {
    this.assertLive(op);
    const size = shapeSize(shape);
    if (size * 4 > MAX_MEMORY_BYTES) {
      throw new KernelError(
        'OUT_OF_MEMORY',
        `${op}: a tensor of shape ${shapeString(shape)} needs ${size * 4} bytes, more than the WebAssembly memory holds; use smaller batches`,
      );
    }
    const block = this.heap.alloc(size * 4);
    return new WasmTensor(new Storage(this, block), shape, dtype);
  }

  /** `out` checked for the size, or a new tensor of `shape`; marked as written either way. */
  private output(
    op: string,
    out: EngineTensor | null | undefined,
    shape: readonly number[],
    name = 'out',
  ): WasmTensor {
    let t: WasmTensor;
    if (out) {
      t = this.t(out, op, name);
      const size = shapeSize(shape);
      if (t.size !== size)
        throw shapeError(
          op,
          `${name} of ${size} elements (${shapeString(shape)})`,
          `${t.size} (${shapeString(t.shape)})`,
        );
    } else {
      t = this.alloc(shape, 'f32', op);
    }
    this.touch(t);
    return t;
  }

  /** Marks a tensor's memory as written (its cached packed forms are stale); call before writing it. */
  private touch(t: WasmTensor): void {
    this.settleReaders(t.storage);
    if (t.storage.pending) this.settle(t.storage.pending);
    t.storage.version++;
  }

  /** @internal Frees a tensor's memory and its cached panels. */
  freeStorage(s: Storage): void {
    if (!this.destroyed) this.settleReaders(s);
    const d = s.pending;
    if (d) {
      // A deferred output released unread: the computation is dropped once none of its outputs is left.
      s.pending = undefined;
      d.outputs.delete(s);
      if (d.outputs.size === 0 && d.state === 'pending') {
        d.state = 'dropped';
        this.detach(d);
        d.cleanup();
      }
    }
    s.released = true;
    if (s.packs) for (const p of s.packs.values()) this.heap.release(p.block);
    s.packs = undefined;
    s.seen = undefined;
    if (!this.destroyed) this.heap.release(s.block);
  }

  private get f32(): Float32Array {
    return this.cpu.f32;
  }

  tensor(shape: readonly number[], data: Float32Array): WasmTensor {
    const size = shapeSize(shape);
    if (data.length !== size) {
      throw new KernelError(
        'SHAPE_MISMATCH',
        `tensor: shape ${shapeString(shape)} has ${size} elements but ${data.length} values were given`,
      );
    }
    const t = this.alloc(shape, 'f32', 'tensor');
    this.f32.set(data, t.byteOffset / 4);
    return t;
  }

  empty(shape: readonly number[], dtype: EngineDType = 'f32'): WasmTensor {
    return this.alloc(shape, dtype, 'empty');
  }

  zeros(shape: readonly number[], dtype: EngineDType = 'f32'): WasmTensor {
    const t = this.alloc(shape, dtype, 'zeros');
    this.f32.fill(0, t.byteOffset / 4, t.byteOffset / 4 + t.size);
    return t;
  }

  fill(t: EngineTensor, value: 0): void {
    const x = this.t(t, 'fill', 't', null);
    if (value !== 0) throw argError('fill', `only 0 is supported, found ${value}`);
    this.touch(x);
    this.f32.fill(0, x.byteOffset / 4, x.byteOffset / 4 + x.size);
  }

  /** Writes data (bit for bit; at most the tensor's size) from element 0 on. */
  write(t: EngineTensor, data: Float32Array | Uint32Array): void {
    const x = this.t(t, 'write', 't', null);
    if (data.length > x.size) {
      throw new KernelError(
        'SHAPE_MISMATCH',
        `write: ${data.length} values do not fit a tensor of ${x.size}`,
      );
    }
    this.touch(x);
    if (data instanceof Uint32Array)
      this.cpu.i32.set(new Int32Array(data.buffer, data.byteOffset, data.length), x.byteOffset / 4);
    else this.f32.set(data, x.byteOffset / 4);
  }

  copy(src: EngineTensor, dst: EngineTensor): void {
    const s = this.t(src, 'copy', 'src', null);
    const d = this.t(dst, 'copy', 'dst', null);
    if (s.size !== d.size) {
      throw new KernelError('SHAPE_MISMATCH', `copy: ${s.size} elements into a tensor of ${d.size}`);
    }
    this.touch(d);
    // Int32 copy: the bits, NaN payloads included.
    this.cpu.i32.copyWithin(d.byteOffset / 4, s.byteOffset / 4, s.byteOffset / 4 + s.size);
  }

  /** A copy of an f32 tensor's elements (a u32 tensor: readU32). */
  async read(t: EngineTensor): Promise<Float32Array> {
    const x = this.t(t, 'read', 't', null);
    if (x.dtype !== 'f32') throw argError('read', `the tensor is ${x.dtype}; read u32 tensors with readU32`);
    return this.f32.slice(x.byteOffset / 4, x.byteOffset / 4 + x.size);
  }

  /** A copy of a u32 tensor's elements (a max-pool's argmax). */
  async readU32(t: EngineTensor): Promise<Uint32Array> {
    const x = this.t(t, 'readU32', 't', 'u32');
    return new Uint32Array(this.cpu.i32.slice(x.byteOffset / 4, x.byteOffset / 4 + x.size).buffer);
  }

  // ---- products -------------------------------------------------------------------------------------------

  /**
   * The packed panels of an operand kept with its tensor, repacked when the tensor changed since; null when
   * the operand is packed per call (first use of a layout, or a tensor that changes between uses).
   * Allocates from the heap: call before an op takes scratch.
   */
  private kept(o: Operand, width: number): PackedMatrix | null {
    if (o.cache === 'never') return null;
    const s = o.t.storage;
    const key =
      `${width}:${o.offset}:${o.count}:${o.K}:${o.qStride}:${o.kStride}` +
      `${o.flip ? `:flip${o.flip.KK}` : ''}` +
      `${o.winograd ? `:winograd${o.winograd.tile}${o.winograd.flipped ? 'T' : ''}` : ''}`;
    let pack = s.packs?.get(key);
    if (!pack) {
      if (o.cache !== 'force' && s.seen?.get(key) !== s.version) {
        s.seen ??= new Map();
        s.seen.set(key, s.version);
        return null;
      }
      const floats =
        (o.winograd ? winogradComponents(o.winograd.tile) : 1) * packedFloats(o.count, o.K, width);
      const block = this.heap.alloc(floats * 4);
      const matrix: PackedMatrix = {
        region: { byteOffset: block.offset, floats },
        size: o.count,
        panels: Math.ceil(o.count / width),
        K: o.K,
      };
      pack = { version: -1, block, matrix };
      s.packs ??= new Map();
      s.packs.set(key, pack);
    }
    if (pack.version !== s.version) {
      this.packOperand(o, width, pack.matrix.region);
      pack.version = s.version;
    }
    return pack.matrix;
  }

  private packOperand(o: Operand, width: number, region: Region): PackedMatrix {
    const src = o.t.byteOffset + 4 * o.offset;
    if (o.winograd) {
      const { O, C, flipped, tile } = o.winograd;
      winogradWeightsOnCpu(this.cpu, src, O, C, flipped, region.byteOffset / 4, tile);
      const M = flipped ? C : O;
      return { region, size: M, panels: Math.ceil(M / MR), K: flipped ? O : C };
    }
    if (o.flip) {
      if (width !== MR) throw argError('pack', 'a flipped kernel is packed as an A operand only');
      return packFlippedInto(this.cpu, src, region, o.K / o.flip.KK, o.flip.C, o.flip.KK);
    }
    return packInto(this.cpu, src, region, o.count, o.K, width, o.qStride, o.kStride);
  }

  private packScratch(o: Operand, width: number): PackedMatrix {
    const floats = (o.winograd ? winogradComponents(o.winograd.tile) : 1) * packedFloats(o.count, o.K, width);
    return this.packOperand(o, width, this.cpu.alloc(floats));
  }

  /**
   * C (M x N) = a (M lines of K) times b (N lines of K) on the GEMM core, handed to `sink` in scratch memory.
   * Every element is one chain of multiply-adds in k order, so which operand takes the A panels does not
   * change a bit: the B side (over which the threads split) is the longer one when N is tiny.
   */
  private product(a: Operand, b: Operand, sink: ProductSink, noSwap = false): void {
    const cpu = this.cpu;
    const M = a.count;
    const N = b.count;
    const swapped = !noSwap && Math.ceil(N / NR) <= 2 && Math.ceil(M / NR) >= 4;
    const aSide = swapped ? b : a;
    const bSide = swapped ? a : b;
    const keptA = this.kept(aSide, MR);
    const keptB = this.kept(bSide, NR);
    const mark = cpu.mark();
    try {
      const A = keptA ?? this.packScratch(aSide, MR);
      const B = keptB ?? this.packScratch(bSide, NR);
      const ldc = B.panels * NR;
      const c = cpu.alloc(A.panels * MR * ldc);
      cpu.gemm(A.region, B.region, c, A.panels, B.panels, a.K);
      const c0 = c.byteOffset / 4;
      if (swapped) sink(c, c0, 1, ldc, true, ldc);
      else sink(c, c0, ldc, 1, false, ldc);
    } finally {
      cpu.reset(mark);
    }
  }

  matmul(
    a: EngineTensor,
    b: EngineTensor,
    M: number,
    K: number,
    N: number,
    o: EngineMatmulOptions = {},
  ): WasmTensor {
    const op = 'matmul';
    const A = this.t(a, op, 'A');
    const B = this.t(b, op, 'B');
    for (const [name, v] of [
      ['M', M],
      ['K', K],
      ['N', N],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw argError(op, `${name} must be an integer >= 1, found ${v}`);
    }
    const batch = o.batch ?? 1;
    checkPositiveInt(op, 'batch', batch);
    const transA = o.transA ?? false;
    const transB = o.transB ?? false;
    const lda = o.lda ?? (transA ? M : K);
    const ldb = o.ldb ?? (transB ? K : N);
    const ldc = o.ldc ?? N;
    const strideA = o.strideA ?? M * K;
    const strideB = o.strideB ?? K * N;
    const strideC = o.strideC ?? M * N;
    const aOff = o.aOffset ?? 0;
    const bOff = o.bOffset ?? 0;
    const cOff = o.cOffset ?? 0;
    for (const [name, v] of [
      ['lda', lda],
      ['ldb', ldb],
      ['ldc', ldc],
      ['strideA', strideA],
      ['strideB', strideB],
      ['strideC', strideC],
      ['aOffset', aOff],
      ['bOffset', bOff],
      ['cOffset', cOff],
    ] as const) {
      if (!Number.isInteger(v) || v < 0) throw argError(op, `${name} must be an integer >= 0, found ${v}`);
    }
    const end = (off: number, rows: number, cols: number, ld: number, stride: number) =>
      off + (batch - 1) * stride + (rows - 1) * ld + cols;
    const need = (t: WasmTensor, name: string, n: number) => {
      if (n > t.size)
        throw shapeError(op, `${name} with at least ${n} elements for this product`, `${t.size}`);
    };
    need(A, 'A', transA ? end(aOff, K, M, lda, strideA) : end(aOff, M, K, lda, strideA));
    need(B, 'B', transB ? end(bOff, N, K, ldb, strideB) : end(bOff, K, N, ldb, strideB));
    if (o.accumulate && !o.out) throw argError(op, 'accumulate needs an output tensor to add to');
    const bias = this.opt(o.bias, op, 'bias');
    const biasAxis = o.biasAxis ?? 'col';
    if (biasAxis !== 'col' && biasAxis !== 'row')
      throw argError(op, `biasAxis must be 'col' or 'row', found '${String(biasAxis)}'`);
    if (bias) need(bias, 'bias', biasAxis === 'col' ? N : M);
    const alpha = o.alpha ?? 1;
    checkFinite(op, 'alpha', alpha);
    let C: WasmTensor;
    if (o.out) {
      C = this.t(o.out, op, 'out');
      need(C, 'C', end(cOff, M, N, ldc, strideC));
      this.touch(C);
    } else {
      C = this.alloc(batch > 1 ? [batch, M, N] : [M, N], 'f32', op);
      need(C, 'C', end(cOff, M, N, ldc, strideC));
    }
    for (let i = 0; i < batch; i++) {
      this.matmulInto(
        {
          t: A,
          offset: aOff + i * strideA,
          count: M,
          K,
          qStride: transA ? 1 : lda,
          kStride: transA ? lda : 1,
          cache: 'auto',
        },
        {
          t: B,
          offset: bOff + i * strideB,
          count: N,
          K,
          qStride: transB ? ldb : 1,
          kStride: transB ? 1 : ldb,
          cache: 'auto',
        },
        C,
        cOff + i * strideC,
        ldc,
        { bias, biasAxis, relu: o.relu ?? false, accumulate: o.accumulate ?? false, alpha },
      );
    }
    // Bumped again after the write: an output that is also an operand must not keep panels of its old data.
    this.touch(C);
    return C;
  }

  /**
   * Whether a product's B operand is gathered on the fly (gemmGathered) rather than packed: when its panels
   * would take more than gatherBFloats (WasmEngineOptions) and no packed form is kept already (a large weight, whose kept
   * panels would double its memory: VGG-11's fc6 and its transpose, 411 MB each).
   */
  private gathersB(b: Operand): boolean {
    if (b.flip || b.winograd || packedFloats(b.count, b.K, NR) <= this.gatherBFloats) return false;
    return !b.t.storage.packs?.has(`${NR}:${b.offset}:${b.count}:${b.K}:${b.qStride}:${b.kStride}`);
  }

  /** C[cOff + m*ldc + n] = alpha * (a b)[m, n] (+ bias) (+ C), ReLU, in float32 (the WGSL epilogue's order). */
  private matmulInto(
    a: Operand,
    b: Operand,
    C: WasmTensor,
    cOff: number,
    ldc: number,
    e: {
      bias: WasmTensor | null;
      biasAxis: 'col' | 'row';
      relu: boolean;
      accumulate: boolean;
      alpha: number;
    },
  ): void {
    const M = a.count;
    const N = b.count;
    const cpu = this.cpu;
    if (e.alpha === 1 && !e.accumulate) {
      const swapped = Math.ceil(N / NR) <= 2 && Math.ceil(M / NR) >= 4;
      const aSide = swapped ? b : a;
      const bSide = swapped ? a : b;
      if (this.gathersB(bSide)) {
        // Tile rows: aSide's lines; columns: bSide's. Not swapped: (m, n) at m*ldc + n; swapped: (n, m).
        const dst = C.byteOffset + 4 * cOff;
        const biasOn = (e.biasAxis === 'col') === swapped ? 'rows' : 'cols';
        const region = e.bias ? e.bias.region : null;
        const src = bSide.t.byteOffset + 4 * bSide.offset;
        const run = (A: PackedMatrix) =>
          swapped
            ? gemmGathered(cpu, A, src, M, bSide.qStride, bSide.kStride, dst, 1, ldc, region, biasOn, e.relu)
            : gemmGathered(cpu, A, src, N, bSide.qStride, bSide.kStride, dst, ldc, 1, region, biasOn, e.relu);
        const keptA = this.kept(aSide, MR);
        if (keptA) run(keptA);
        else {
          const mark = cpu.mark();
          try {
            run(this.packScratch(aSide, MR));
          } finally {
            cpu.reset(mark);
          }
        }
        return;
      }
    }
    this.product(a, b, (c, c0, rs, cs, swapped, ldcScratch) => {
      const dst = C.byteOffset + 4 * cOff;
      if (e.alpha === 1) {
        // The scatter routine on the threads: rows of the scratch C are the A panels' lines.
        const biasOn = (e.biasAxis === 'col') === swapped ? 'rows' : 'cols';
        const region = e.bias ? e.bias.region : null;
        const acc = e.accumulate;
        if (swapped) storeProduct(cpu, c, ldcScratch, N, M, dst, 1, ldc, region, biasOn, e.relu, acc);
        else storeProduct(cpu, c, ldcScratch, M, N, dst, ldc, 1, region, biasOn, e.relu, acc);
        return;
      }
      const f = this.f32;
      const alpha = fround(e.alpha);
      const out = dst / 4;
      const bias = e.bias ? e.bias.byteOffset / 4 : -1;
      for (let m = 0; m < M; m++) {
        const row = out + m * ldc;
        for (let n = 0; n < N; n++) {
          let v = fround(alpha * f[c0 + m * rs + n * cs]);
          if (bias >= 0) v = fround(v + f[bias + (e.biasAxis === 'col' ? n : m)]);
          if (e.accumulate) v = fround(v + f[row + n]);
          f[row + n] = e.relu && !(v > 0) && !Number.isNaN(v) ? 0 : v;
        }
      }
    });
  }

  // ---- layers ---------------------------------------------------------------------------------------------

  channelAffine(
    x: EngineTensor,
    o: {
      channels: number;
      planeSize: number;
      scale: readonly number[];
      shift: readonly number[];
      out?: EngineTensor;
    },
  ): WasmTensor {
    const op = 'channelAffine';
    const X = this.t(x, op, 'x');
    const { channels, planeSize, scale, shift } = o;
    checkPositiveInt(op, 'channels', channels);
    checkPositiveInt(op, 'planeSize', planeSize);
    if (X.size % (channels * planeSize) !== 0) {
      throw argError(
        op,
        `x's ${X.size} elements (shape ${shapeString(X.shape)}) are not rows of channels * planeSize = ${channels} * ${planeSize}`,
      );
    }
    if (scale.length !== channels || shift.length !== channels) {
      throw argError(
        op,
        `scale and shift need one value per channel (${channels}), found ${scale.length} and ${shift.length}`,
      );
    }
    for (let c = 0; c < channels; c++) {
      checkFinite(op, `scale[${c}]`, scale[c]);
      checkFinite(op, `shift[${c}]`, shift[c]);
    }
    const Y = this.output(op, o.out, X.shape);
    const f = this.f32;
    const xi = X.byteOffset / 4;
    const yi = Y.byteOffset / 4;
    const planes = X.size / planeSize;
    for (let p = 0; p < planes; p++) {
      const c = p % channels;
      const s = fround(scale[c]);
      const t = fround(shift[c]);
      const start = p * planeSize;
      for (let i = start; i < start + planeSize; i++) f[yi + i] = fround(f[xi + i] * s) + t;
    }
    return Y;
  }

  /** Packed panels of a weight used as the A operand (rows x K, element (r, k) at r*rowStride + k*kStride). */
  private weightPanels(w: WasmTensor, rows: number, K: number, rowStride: number, kStride: number): Operand {
    return { t: w, offset: 0, count: rows, K, qStride: rowStride, kStride, cache: 'auto' };
  }

  conv2d(
    x: EngineTensor,
    w: EngineTensor,
    bias: EngineTensor | null,
    o: EngineConvOptions & { relu?: boolean; out?: EngineTensor } = {},
  ): WasmTensor {
    const op = 'conv2d';
    const X = this.t(x, op, 'x');
    const Wt = this.t(w, op, 'w');
    const b = this.opt(bias, op, 'bias');
    const g = conv2dGeometry(op, X.shape, Wt.shape, o);
    if (b && b.size !== g.O) throw shapeError(op, `a bias of ${g.O}`, `${b.size}`);
    const Y = this.output(op, o.out, [g.N, g.O, g.OH, g.OW]);
    if (Y.size === 0) return Y;
    const CKK = g.C * g.KH * g.KW;
    const d = directGeometry(g);
    if (winogradApplies(d) && !convRowsApplies(d)) {
      const tile = winogradTile(d);
      const u: Operand = {
        ...this.weightPanels(Wt, g.O, g.C, 0, 0),
        winograd: { O: g.O, C: g.C, flipped: false, tile },
      };
      this.withWeight(u, (packed) =>
        winogradConv(this.cpu, X.region, d, packed, b ? b.region : null, o.relu ?? false, Y.region, tile),
      );
    } else {
      this.withWeight(this.weightPanels(Wt, g.O, CKK, CKK, 1), (packed) =>
        conv2dForwardInto(this.cpu, X.region, g, packed, b ? b.region : null, o.relu ?? false, Y.region),
      );
    }
    // Bumped again after the write: an output that is also an operand must not keep panels of its old data.
    this.touch(Y);
    return Y;
  }

  /** Runs `body` with a weight's A panels, kept with the tensor or packed in scratch for this call. */
  private withWeight(w: Operand, body: (packed: PackedMatrix) => void): void {
    const kept = this.kept(w, MR);
    if (kept) {
      body(kept);
      return;
    }
    const mark = this.cpu.mark();
    try {
      body(this.packScratch(w, MR));
    } finally {
      this.cpu.reset(mark);
    }
  }

  conv2dBackwardInput(
    dy: EngineTensor,
    w: EngineTensor,
    xShape: readonly number[],
    o: EngineConvOptions & { out?: EngineTensor } = {},
  ): WasmTensor {
    const op = 'conv2dBackwardInput';
    const D = this.t(dy, op, 'dy');
    const Wt = this.t(w, op, 'w');
    const g = conv2dGeometry(op, xShape, Wt.shape, o);
    const dyShape = [g.N, g.O, g.OH, g.OW];
    if (D.size !== g.N * g.O * g.OH * g.OW)
      throw shapeError(op, `dy of shape ${shapeString(dyShape)}`, shapeString(D.shape));
    const DX = this.output(op, o.out, xShape);
    if (DX.size === 0) return DX;
    const KK = g.KH * g.KW;
    const CKK = g.C * KK;
    const dT = directBackwardInput(g) ? backwardInputGeometry(g) : null;
    if (dT && winogradApplies(dT) && !convRowsApplies(dT)) {
      // dx as a convolution of dy with the turned kernels, through Winograd.
      const tile = winogradTile(dT);
      const u: Operand = {
        ...this.weightPanels(Wt, g.C, g.O, 0, 0),
        winograd: { O: g.O, C: g.C, flipped: true, tile },
      };
      this.withWeight(u, (packed) =>
        winogradConv(this.cpu, D.region, dT, packed, null, false, DX.region, tile),
      );
    } else if (dT) {
      // A = the flipped kernel, rows c, steps (o, kh, kw): dx as a convolution of dy.
      const flipped: Operand = {
        t: Wt,
        offset: 0,
        count: g.C,
        K: g.O * KK,
        qStride: 0,
        kStride: 0,
        cache: 'auto',
        flip: { C: g.C, KK },
      };
      this.withWeight(flipped, (packed) =>
        conv2dBackwardInputDirectInto(this.cpu, D.region, g, packed, DX.region),
      );
    } else {
      // A = W^T: rows (c, kh, kw), steps o; then col2im.
      this.withWeight(this.weightPanels(Wt, CKK, g.O, 1, CKK), (packed) =>
        conv2dBackwardInputInto(this.cpu, D.region, g, packed, DX.region),
      );
    }
    // Bumped again after the write: an output that is also an operand must not keep panels of its old data.
    this.touch(DX);
    return DX;
  }

  conv2dBackwardWeight(
    x: EngineTensor,
    dy: EngineTensor,
    wShape: readonly number[],
    o: EngineConvOptions & { out?: EngineTensor; accumulate?: boolean } = {},
  ): WasmTensor {
    const op = 'conv2dBackwardWeight';
    const X = this.t(x, op, 'x');
    const D = this.t(dy, op, 'dy');
    const g = conv2dGeometry(op, X.shape, wShape, o);
    if (D.size !== g.N * g.O * g.OH * g.OW) {
      throw shapeError(op, `dy of shape ${shapeString([g.N, g.O, g.OH, g.OW])}`, shapeString(D.shape));
    }
    if (o.accumulate && !o.out) throw argError(op, 'accumulate needs an output tensor to add to');
    const DW = this.output(op, o.out, wShape);
    if (DW.size === 0) return DW;
    conv2dBackwardWeightInto(this.cpu, X.region, D.region, g, DW.region, o.accumulate ?? false);
    // Bumped again after the write: an output that is also an operand must not keep panels of its old data.
    this.touch(DW);
    return DW;
  }

  relu(x: EngineTensor, out?: EngineTensor): WasmTensor {
    const op = 'relu';
    const X = this.t(x, op, 'x');
    const Y = this.output(op, out, X.shape);
    const f = this.f32;
    const xi = X.byteOffset / 4;
    const yi = Y.byteOffset / 4;
    for (let i = 0; i < X.size; i++) {
      const v = f[xi + i];
      f[yi + i] = v > 0 || Number.isNaN(v) ? v : 0; // NaN stays NaN, as in PyTorch
    }
    return Y;
  }

  reluBackward(dy: EngineTensor, y: EngineTensor, out?: EngineTensor): WasmTensor {
    const op = 'reluBackward';
    const D = this.t(dy, op, 'dy');
    const Y = this.t(y, op, 'y');
    checkSameSize(op, ['dy', D], ['y', Y]);
    const DX = this.output(op, out, D.shape);
    const f = this.f32;
    const di = D.byteOffset / 4;
    const yi = Y.byteOffset / 4;
    const oi = DX.byteOffset / 4;
    for (let i = 0; i < D.size; i++) f[oi + i] = f[yi + i] > 0 ? f[di + i] : 0;
    return DX;
  }

  maxPool2d(x: EngineTensor, o: { kernel: number; stride?: number }): { y: WasmTensor; argmax: WasmTensor } {
    const op = 'maxPool2d';
    const X = this.t(x, op, 'x');
    if (X.shape.length !== 4) throw shapeError(op, 'x of shape [N, C, H, W]', shapeString(X.shape));
    const kernel = o.kernel;
    const stride = o.stride ?? kernel;
    checkPositiveInt(op, 'kernel', kernel);
    checkPositiveInt(op, 'stride', stride);
    const shape = maxPool2dShape(op, X.shape, kernel, stride);
    const y = this.alloc(shape, 'f32', op);
    const argmax = this.alloc(shape, 'u32', op);
    maxPool2dInto(this.cpu, X.region, X.shape, kernel, stride, y.region, argmax.region);
    return { y, argmax };
  }

  maxPool2dBackward(
    dy: EngineTensor,
    argmax: EngineTensor,
    xShape: readonly number[],
    o: { kernel: number; stride?: number; reluOutput?: EngineTensor },
  ): WasmTensor {
    const op = 'maxPool2dBackward';
    const D = this.t(dy, op, 'dy');
    const A = this.t(argmax, op, 'argmax', 'u32');
    if (D.shape.length !== 4) throw shapeError(op, 'dy of shape [N, C, OH, OW]', shapeString(D.shape));
    if (A.shape.length !== 4 || A.shape.some((d, i) => d !== D.shape[i])) {
      throw shapeError(op, `argmax of dy's shape ${shapeString(D.shape)}`, shapeString(A.shape));
    }
    if (xShape.length !== 4) throw shapeError(op, 'xShape [N, C, H, W]', shapeString(xShape));
    const kernel = o.kernel;
    const stride = o.stride ?? kernel;
    checkPositiveInt(op, 'kernel', kernel);
    checkPositiveInt(op, 'stride', stride);
    const expected = maxPool2dShape(op, xShape, kernel, stride);
    if (expected.some((d, i) => d !== D.shape[i])) {
      throw shapeError(
        op,
        `dy of shape ${shapeString(expected)} (kernel ${kernel}, stride ${stride} on ${shapeString(xShape)})`,
        shapeString(D.shape),
      );
    }
    const mask = this.opt(o.reluOutput, op, 'reluOutput');
    if (mask && mask.size !== D.size) {
      throw shapeError(
        op,
        `reluOutput (the pool's output) of dy's shape ${shapeString(D.shape)}`,
        shapeString(mask.shape),
      );
    }
    const DX = this.alloc(xShape, 'f32', op);
    maxPool2dBackwardInto(
      this.cpu,
      D.region,
      A.region,
      D.shape,
      xShape,
      DX.region,
      mask ? mask.region : undefined,
      { kernel, stride },
    );
    return DX;
  }

  private dropoutRun(
    op: string,
    x: EngineTensor,
    o: { p: number; seed: number; out?: EngineTensor },
  ): WasmTensor {
    const X = this.t(x, op, 'x');
    if (!(o.p >= 0 && o.p < 1)) throw argError(op, `p must be in [0, 1), found ${o.p}`);
    if (!Number.isInteger(o.seed)) throw argError(op, `seed must be an integer, found ${o.seed}`);
    const Y = this.output(op, o.out, X.shape);
    // As the WGSL: keep element i when (pcgHash(i ^ pcgHash(seed)) >> 8) / 2^24 >= p (both f32), scaled by
    // the f32 of 1 / (1 - p).
    const hs = pcgHash(o.seed >>> 0);
    const p = fround(o.p);
    const scale = fround(1 / (1 - o.p));
    const f = this.f32;
    const xi = X.byteOffset / 4;
    const yi = Y.byteOffset / 4;
    for (let i = 0; i < X.size; i++) {
      const unit = (pcgHash((i ^ hs) >>> 0) >>> 8) / 16777216;
      f[yi + i] = unit >= p ? f[xi + i] * scale : 0;
    }
    return Y;
  }

  dropout(x: EngineTensor, o: { p: number; seed: number; out?: EngineTensor }): WasmTensor {
    return this.dropoutRun('dropout', x, o);
  }

  dropoutBackward(dy: EngineTensor, o: { p: number; seed: number; out?: EngineTensor }): WasmTensor {
    return this.dropoutRun('dropoutBackward', dy, o);
  }

  private lstmWeights(w: EngineLstmWeights, op: string) {
    return {
      wIh: this.t(w.wIh, op, 'wIh'),
      wHh: this.t(w.wHh, op, 'wHh'),
      bIh: this.t(w.bIh, op, 'bIh'),
      bHh: this.t(w.bHh, op, 'bHh'),
    };
  }

  /**
   * One batch-first LSTM layer: the input projection of every step in one GEMM (x W_ih^T + b_ih, straight
   * into the gates), then per step the GEMM h_{t-1} W_hh^T (W_hh packed once) and the gate math, which adds
   * the projection, b_hh, activates the gates (kept for the backward) and writes c_t and h_t.
   */
  lstmForward(
    x: EngineTensor,
    w: EngineLstmWeights,
    h0?: EngineTensor | null,
    c0?: EngineTensor | null,
  ): EngineLstmForward {
    const op = 'lstmForward';
    const X = this.t(x, op, 'x');
    const W = this.lstmWeights(w, op);
    const { N, T, I, H } = lstmDims(op, X, W);
    const H0 = this.opt(h0, op, 'h0');
    const C0 = this.opt(c0, op, 'c0');
    if (H0) checkState(op, 'h0', H0, N, H);
    if (C0) checkState(op, 'c0', C0, N, H);
    const G = 4 * H;
    const gates = this.alloc([N, T, G], 'f32', op);
    const h = this.alloc([N, T, H], 'f32', op);
    const c = this.alloc([N, T, H], 'f32', op);
    const hT = this.alloc([N, H], 'f32', op);
    const cT = this.alloc([N, H], 'f32', op);
    // gates[n, t] = x[n, t] W_ih^T + b_ih
    this.matmulInto(
      { t: X, offset: 0, count: N * T, K: I, qStride: I, kStride: 1, cache: 'auto' },
      { t: W.wIh, offset: 0, count: G, K: I, qStride: I, kStride: 1, cache: 'auto' },
      gates,
      0,
      G,
      { bias: W.bIh, biasAxis: 'col', relu: false, accumulate: false, alpha: 1 },
    );
    const wHh: Operand = { t: W.wHh, offset: 0, count: G, K: H, qStride: H, kStride: 1, cache: 'force' };
    for (let t = 0; t < T; t++) {
      const prev: Operand | null =
        t > 0
          ? { t: h, offset: (t - 1) * H, count: N, K: H, qStride: T * H, kStride: 1, cache: 'never' }
          : H0
            ? { t: H0, offset: 0, count: N, K: H, qStride: H, kStride: 1, cache: 'never' }
            : null;
      // The recurrent product's rows are the batch rows (not swapped): element (n, g) at c0i + n * rs + g.
      if (prev)
        this.product(
          prev,
          wHh,
          (_c, c0i, rs) => this.lstmGates(t, N, T, H, gates, h, c, hT, cT, W.bHh, C0, 4 * c0i, rs),
          true,
        );
      else this.lstmGates(t, N, T, H, gates, h, c, hT, cT, W.bHh, C0, 0, 0);
    }
    for (const t of [gates, h, c, hT, cT]) this.touch(t);
    return { h, c, gates, hT, cT };
  }

  /**
   * The forward gate math of step t for every (n, j) (lstm_gates); the recurrent product at byte address
   * rec (0: none), rows ldRec floats apart.
   */
  private lstmGates(
    t: number,
    N: number,
    T: number,
    H: number,
    gates: WasmTensor,
    h: WasmTensor,
    c: WasmTensor,
    hT: WasmTensor,
    cT: WasmTensor,
    bHh: WasmTensor,
    c0: WasmTensor | null,
    rec: number,
    ldRec: number,
  ): void {
    const G = 4 * H;
    const last = t === T - 1;
    const cPrev = t > 0 ? c.byteOffset + 4 * (t - 1) * H : c0 ? c0.byteOffset : 0;
    this.cpu.run(
      'lstm_gates',
      [
        gates.byteOffset + 4 * t * G,
        T * G,
        rec,
        ldRec,
        bHh.byteOffset,
        cPrev,
        t > 0 ? T * H : H,
        c.byteOffset + 4 * t * H,
        h.byteOffset + 4 * t * H,
        T * H,
        last ? cT.byteOffset : 0,
        last ? hT.byteOffset : 0,
        H,
      ],
      N,
      lstmRowsPerChunk(H),
    );
  }

  /**
   * Backpropagation through time: per step in reverse, the gate gradients dG_t from dh_t (+ the recurrent
   * gradient) and the running dc, then dh_{t-1} = dG_t W_hh (W_hh packed once); after the loop dx = dG W_ih,
   * dW_ih = dG^T x, dW_hh = dG^T h_{t-1} (h shifted by a step, h0 first) and the bias gradients (column sums of
   * dG, in float64, in row order).
   */
  lstmBackward(
    x: EngineTensor,
    w: EngineLstmWeights,
    h0: EngineTensor | null | undefined,
    c0: EngineTensor | null | undefined,
    forward: EngineLstmForward,
    dh: EngineTensor,
    dhT?: EngineTensor | null,
    dcT?: EngineTensor | null,
  ): EngineLstmGradients {
    const op = 'lstmBackward';
    const X = this.t(x, op, 'x');
    const W = this.lstmWeights(w, op);
    const { N, T, I, H, expect } = lstmDims(op, X, W);
    const G = 4 * H;
    const H0 = this.opt(h0, op, 'h0');
    const C0 = this.opt(c0, op, 'c0');
    if (H0) checkState(op, 'h0', H0, N, H);
    if (C0) checkState(op, 'c0', C0, N, H);
    const fh = this.t(forward.h, op, 'forward.h');
    const fc = this.t(forward.c, op, 'forward.c');
    const fg = this.t(forward.gates, op, 'forward.gates');
    expect('forward.h', fh, [N, T, H]);
    expect('forward.c', fc, [N, T, H]);
    expect('forward.gates', fg, [N, T, G]);
    const D = this.t(dh, op, 'dh');
    expect('dh', D, [N, T, H]);
    const DHT = this.opt(dhT, op, 'dhT');
    const DCT = this.opt(dcT, op, 'dcT');
    if (DHT) checkState(op, 'dhT', DHT, N, H);
    if (DCT) checkState(op, 'dcT', DCT, N, H);

    const dhRec = this.alloc([N, H], 'f32', op);
    const dc = this.alloc([N, H], 'f32', op);
    const dG = this.alloc([N, T, G], 'f32', op);
    const hPrev = this.alloc([N, T, H], 'f32', op);
    let handed = false;
    try {
      let f = this.f32;
      if (DHT) f.copyWithin(dhRec.byteOffset / 4, DHT.byteOffset / 4, DHT.byteOffset / 4 + N * H);
      else f.fill(0, dhRec.byteOffset / 4, dhRec.byteOffset / 4 + N * H);
      if (DCT) f.copyWithin(dc.byteOffset / 4, DCT.byteOffset / 4, DCT.byteOffset / 4 + N * H);
      else f.fill(0, dc.byteOffset / 4, dc.byteOffset / 4 + N * H);
      const wHh: Operand = { t: W.wHh, offset: 0, count: H, K: G, qStride: 1, kStride: H, cache: 'force' };
      const noEpilogue = { bias: null, biasAxis: 'col' as const, relu: false, accumulate: false, alpha: 1 };
      for (let t = T - 1; t >= 0; t--) {
        this.lstmGatesBackward(t, N, T, H, D, dhRec, dc, fg, fc, C0, dG);
        // dh_{t-1} = dG_t W_hh
        this.matmulInto(
          { t: dG, offset: t * G, count: N, K: G, qStride: T * G, kStride: 1, cache: 'never' },
          wHh,
          dhRec,
          0,
          H,
          noEpilogue,
        );
      }
      const dx = this.alloc([N, T, I], 'f32', op);
      this.matmulInto(
        { t: dG, offset: 0, count: N * T, K: G, qStride: G, kStride: 1, cache: 'never' },
        { t: W.wIh, offset: 0, count: I, K: G, qStride: 1, kStride: I, cache: 'auto' },
        dx,
        0,
        I,
        noEpilogue,
      );
      // hPrev[n, t] = h[n, t-1], h0 (or 0) at t = 0.
      f = this.f32;
      const hp = hPrev.byteOffset / 4;
      const hs = fh.byteOffset / 4;
      for (let n = 0; n < N; n++) {
        const row = n * T * H;
        if (H0) f.copyWithin(hp + row, H0.byteOffset / 4 + n * H, H0.byteOffset / 4 + (n + 1) * H);
        else f.fill(0, hp + row, hp + row + H);
        f.copyWithin(hp + row + H, hs + row, hs + row + (T - 1) * H);
      }
      const dWih = this.alloc([G, I], 'f32', op);
      const dWhh = this.alloc([G, H], 'f32', op);
      const dbIh = this.alloc([G], 'f32', op);
      const dbHh = this.alloc([G], 'f32', op);
      // The weight gradients are computed when first used (an attack asks for dx only and releases them).
      const weightGradients = () => {
        const dGT: Operand = { t: dG, offset: 0, count: G, K: N * T, qStride: 1, kStride: G, cache: 'never' };
        this.matmulInto(
          dGT,
          { t: X, offset: 0, count: I, K: N * T, qStride: 1, kStride: I, cache: 'never' },
          dWih,
          0,
          I,
          noEpilogue,
        );
        this.matmulInto(
          dGT,
          { t: hPrev, offset: 0, count: H, K: N * T, qStride: 1, kStride: H, cache: 'never' },
          dWhh,
          0,
          H,
          noEpilogue,
        );
        const m = this.f32;
        const sums = new Float64Array(G);
        const dg = dG.byteOffset / 4;
        for (let r = 0; r < N * T; r++) for (let k = 0; k < G; k++) sums[k] += m[dg + r * G + k];
        m.set(sums, dbIh.byteOffset / 4);
        m.set(sums, dbHh.byteOffset / 4);
      };
      for (const t of [dx, dWih, dWhh, dbIh, dbHh, dhRec, dc]) this.touch(t);
      this.defer([dWih, dWhh, dbIh, dbHh], [X], weightGradients, () => {
        dG.release();
        hPrev.release();
      });
      handed = true;
      return { dx, dWih, dWhh, dbIh, dbHh, dh0: dhRec, dc0: dc };
    } finally {
      if (!handed) {
        dG.release();
        hPrev.release();
      }
    }
  }

  /** The BPTT gate math of step t (lstm_gates_backward): dG_t from dh_t + dhRec and dc; dc becomes dc_{t-1}. */
  private lstmGatesBackward(
    t: number,
    N: number,
    T: number,
    H: number,
    dh: WasmTensor,
    dhRec: WasmTensor,
    dc: WasmTensor,
    gates: WasmTensor,
    c: WasmTensor,
    c0: WasmTensor | null,
    dG: WasmTensor,
  ): void {
    const G = 4 * H;
    const cPrev = t > 0 ? c.byteOffset + 4 * (t - 1) * H : c0 ? c0.byteOffset : 0;
    this.cpu.run(
      'lstm_gates_backward',
      [
        gates.byteOffset + 4 * t * G,
        dG.byteOffset + 4 * t * G,
        T * G,
        c.byteOffset + 4 * t * H,
        dh.byteOffset + 4 * t * H,
        T * H,
        cPrev,
        t > 0 ? T * H : H,
        dhRec.byteOffset,
        dc.byteOffset,
        H,
      ],
      N,
      lstmRowsPerChunk(H),
    );
  }

  sumChannels(x: EngineTensor): WasmTensor {
    const op = 'sumChannels';
    const X = this.t(x, op, 'x');
    if (X.shape.length < 2)
      throw shapeError(op, 'x of shape [N, C, ...] (rank 2 or more)', shapeString(X.shape));
    const [N, C] = X.shape;
    const P = X.shape.slice(2).reduce((a, b) => a * b, 1);
    const Y = this.alloc([C], 'f32', op);
    sumChannelsInto(this.cpu, X.region, N, C, P, Y.region);
    return Y;
  }

  // ---- element-wise updates -------------------------------------------------------------------------------

  axpy(alpha: number, x: EngineTensor, y: EngineTensor): WasmTensor {
    const op = 'axpy';
    const X = this.t(x, op, 'x');
    const Y = this.t(y, op, 'y');
    checkSameSize(op, ['x', X], ['y', Y]);
    checkDistinct(op, ['y', Y], ['x', X]);
    checkFinite(op, 'alpha', alpha);
    this.touch(Y);
    const a = fround(alpha);
    const f = this.f32;
    const xi = X.byteOffset / 4;
    const yi = Y.byteOffset / 4;
    for (let i = 0; i < X.size; i++) f[yi + i] += fround(a * f[xi + i]);
    return Y;
  }

  sgdMomentumStep(
    w: EngineTensor,
    g: EngineTensor,
    v: EngineTensor,
    o: { lr: number; momentum: number; weightDecay: number },
  ): void {
    const op = 'sgdMomentumStep';
    const Wt = this.t(w, op, 'w');
    const Gt = this.t(g, op, 'g');
    const V = this.t(v, op, 'v');
    checkSameSize(op, ['w', Wt], ['g', Gt]);
    checkSameSize(op, ['w', Wt], ['v', V]);
    checkDistinct(op, ['w', Wt], ['g', Gt], ['v', V]);
    checkDistinct(op, ['v', V], ['g', Gt]);
    checkFinite(op, 'lr', o.lr);
    checkFinite(op, 'momentum', o.momentum);
    checkFinite(op, 'weightDecay', o.weightDecay);
    this.touch(Wt);
    this.touch(V);
    sgdInto(this.cpu, Wt.region, Gt.region, V.region, Wt.size, o);
  }

  tanhScaled(x: EngineTensor, alpha: number, out?: EngineTensor): WasmTensor {
    const op = 'tanhScaled';
    const X = this.t(x, op, 'x');
    checkFinite(op, 'alpha', alpha);
    const Y = this.output(op, out, X.shape);
    const a = fround(alpha);
    const f = this.f32;
    const xi = X.byteOffset / 4;
    const yi = Y.byteOffset / 4;
    for (let i = 0; i < X.size; i++) f[yi + i] = Math.tanh(fround(a * f[xi + i]));
    return Y;
  }

  tanhScaledBackward(dy: EngineTensor, x: EngineTensor, alpha: number, out?: EngineTensor): WasmTensor {
    const op = 'tanhScaledBackward';
    const D = this.t(dy, op, 'dy');
    const X = this.t(x, op, 'x');
    checkFinite(op, 'alpha', alpha);
    checkSameSize(op, ['dy', D], ['x', X]);
    const DX = this.output(op, out, X.shape);
    const a = fround(alpha);
    const f = this.f32;
    const di = D.byteOffset / 4;
    const xi = X.byteOffset / 4;
    const oi = DX.byteOffset / 4;
    for (let i = 0; i < X.size; i++) f[oi + i] = f[di + i] * a * tanhSlope(fround(a * f[xi + i]));
    return DX;
  }

  /**
   * The L2 step's per-row scale, as the WGSL computes it: gmax = max |g|, scaledNorm = ||g / gmax|| (the sum
   * in float64 in element order, then rounded), so tiny or huge gradients neither underflow nor overflow.
   * Returns [gmax, scaledNorm]; gmax > 0 only for rows that move.
   */
  private rowNorm(f: Float32Array, g: number, cols: number): [number, number] {
    let gmax = 0;
    for (let i = 0; i < cols; i++) {
      const v = Math.abs(f[g + i]);
      if (v > gmax) gmax = v;
    }
    if (!(gmax > 0)) return [0, 1];
    let ss = 0;
    for (let i = 0; i < cols; i++) {
      const q = fround(f[g + i] / gmax);
      ss += q * q;
    }
    return [gmax, fround(Math.sqrt(ss))];
  }

  attackStep(
    delta: EngineTensor,
    g: EngineTensor,
    rows: number,
    o: { mode: 'l2' | 'sign' | 'raw'; lr: number },
  ): void {
    const op = 'attackStep';
    const Dt = this.t(delta, op, 'delta');
    const Gt = this.t(g, op, 'g');
    checkSameSize(op, ['delta', Dt], ['g', Gt]);
    checkDistinct(op, ['delta', Dt], ['g', Gt]);
    checkRows(op, Dt, rows);
    const { mode } = o;
    checkFinite(op, 'lr', o.lr);
    if (mode !== 'l2' && mode !== 'sign' && mode !== 'raw') {
      throw argError(op, `mode must be 'l2', 'sign' or 'raw', found '${String(mode)}'`);
    }
    this.touch(Dt);
    const lr = fround(o.lr);
    const f = this.f32;
    const di = Dt.byteOffset / 4;
    const gi = Gt.byteOffset / 4;
    if (mode === 'sign') {
      for (let i = 0; i < Dt.size; i++) f[di + i] -= fround(lr * Math.sign(f[gi + i]));
      return;
    }
    if (mode === 'raw') {
      for (let i = 0; i < Dt.size; i++) f[di + i] -= fround(lr * f[gi + i]);
      return;
    }
    if (rows === 0) return;
    const cols = Dt.size / rows;
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const [gmax, norm] = this.rowNorm(f, gi + base, cols);
      if (!(gmax > 0)) continue;
      for (let i = base; i < base + cols; i++)
        f[di + i] -= fround(lr * fround(fround(f[gi + i] / gmax) / norm));
    }
  }

  pairwiseTerms(
    theta: EngineTensor,
    sim: EngineTensor,
    o: { thetaScale: number; scale: number; balance: boolean },
  ): { coef: WasmTensor; likelihood: WasmTensor } {
    const op = 'pairwiseTerms';
    const T = this.t(theta, op, 'theta');
    const S = this.t(sim, op, 'sim');
    if (T.shape.length !== 2) throw shapeError(op, 'theta [B, N]', shapeString(T.shape));
    checkSameSize(op, ['theta', T], ['sim', S]);
    checkFinite(op, 'thetaScale', o.thetaScale);
    checkFinite(op, 'scale', o.scale);
    const [rows, cols] = T.shape;
    const chunks = Math.ceil(cols / PAIRWISE_CHUNK);
    const coef = this.alloc([rows, cols], 'f32', op);
    const likelihood = this.alloc([rows, chunks], 'f32', op);
    this.cpu.run(
      'pairwise_terms',
      [
        T.byteOffset,
        S.byteOffset,
        coef.byteOffset,
        likelihood.byteOffset,
        cols,
        chunks,
        o.balance ? 1 : 0,
        f32Bits(o.thetaScale),
        f32Bits(o.scale),
      ],
      cols ? rows : 0,
    );
    return { coef, likelihood };
  }

  attackProject(delta: EngineTensor, xn: EngineTensor, o: EngineAttackProjectOptions): void {
    const op = 'attackProject';
    const Dt = this.t(delta, op, 'delta');
    const Xn = this.t(xn, op, 'xn');
    checkSameSize(op, ['delta', Dt], ['xn', Xn]);
    checkDistinct(op, ['delta', Dt], ['xn', Xn]);
    const box = projectBox(op, Dt, o);
    this.touch(Dt);
    const f = this.f32;
    const di = Dt.byteOffset / 4;
    const xi = Xn.byteOffset / 4;
    const planes = Dt.size / box.planeSize;
    for (let p = 0; p < planes; p++) {
      const c = p % box.channels;
      const lo = box.lo[c];
      const hi = box.hi[c];
      const eps = box.eps[c];
      for (let i = p * box.planeSize; i < (p + 1) * box.planeSize; i++) {
        const x = f[xi + i];
        const image = Math.min(Math.max(fround(x + f[di + i]), lo), hi);
        f[di + i] = Math.min(Math.max(fround(image - x), -eps), eps);
      }
    }
  }

  attackStepProject(
    delta: EngineTensor,
    g: EngineTensor,
    xn: EngineTensor,
    xAdv: EngineTensor,
    rows: number,
    o: EngineAttackProjectOptions & { lr: number },
  ): void {
    const op = 'attackStepProject';
    const Dt = this.t(delta, op, 'delta');
    const Gt = this.t(g, op, 'g');
    const Xn = this.t(xn, op, 'xn');
    const Xa = this.t(xAdv, op, 'xAdv');
    for (const [name, t] of [
      ['g', Gt],
      ['xn', Xn],
      ['xAdv', Xa],
    ] as const) {
      checkSameSize(op, ['delta', Dt], [name, t]);
    }
    checkDistinct(op, ['delta', Dt], ['g', Gt], ['xn', Xn], ['xAdv', Xa]);
    checkDistinct(op, ['xAdv', Xa], ['g', Gt], ['xn', Xn]);
    checkRows(op, Dt, rows);
    checkFinite(op, 'lr', o.lr);
    const box = projectBox(op, Dt, o);
    if (rows > 0 && (Dt.size / rows) % (box.channels * box.planeSize) !== 0) {
      throw argError(
        op,
        `a row of ${Dt.size / rows} elements is not channels * planeSize = ${box.channels} * ${box.planeSize} elements`,
      );
    }
    if (rows === 0) return;
    this.touch(Dt);
    this.touch(Xa);
    // The same f32 steps as attackStep (l2), then attackProject, then xn + delta (step_project), a row per
    // chunk on the threads.
    const box3 = new Float32Array(3 * box.channels);
    for (let c = 0; c < box.channels; c++) {
      box3[3 * c] = box.lo[c];
      box3[3 * c + 1] = box.hi[c];
      box3[3 * c + 2] = box.eps[c];
    }
    const mark = this.cpu.mark();
    try {
      const boxRegion = this.cpu.upload(box3);
      this.cpu.run(
        'step_project',
        [
          Dt.byteOffset,
          Gt.byteOffset,
          Xn.byteOffset,
          Xa.byteOffset,
          Dt.size / rows,
          box.planeSize,
          box.channels,
          boxRegion.byteOffset,
          f32Bits(o.lr),
        ],
        rows,
      );
    } finally {
      this.cpu.reset(mark);
    }
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  /** Stops the threads; the engine's tensors become unusable. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.cpu.destroy();
  }
}
