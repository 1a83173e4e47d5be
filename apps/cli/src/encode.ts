// dhta encode: f(x) and codes sign(f(x)) of a .npy batch of images (NCHW) or videos (NTCHW) in [0, 1]; the codes
// as int8 +-1, or with --packed as bytes in FAISS's layout, which `dhta search` reads.
import { renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import {
  bytesPerCode,
  fromPm1,
  MAX_BITS,
  MIN_BITS,
  readNpyFile,
  toFaissBytes,
  writeNpyFile,
} from '@dhta/kernels/hamming';
import type { ModelSpec } from '@dhta/models';
import type { Command } from 'commander';
import { positiveInt } from './attack.js';
import { CliError } from './errors.js';
import { makeDir } from './files.js';
import {
  backendOption,
  deviceOf,
  ENGINE_HELP,
  type Engine,
  engineOption,
  type GpuFlags,
  openNetwork,
  withOptionalGpu,
} from './gpu.js';
import { printJson } from './output.js';

export interface EncodeOptions extends GpuFlags {
  model: string;
  input: string;
  out: string;
  features?: string;
  /** Codes packed 8 bits per byte, least-significant bit first (FAISS's binary layout), as uint8. */
  packed?: boolean;
  batch?: number;
  engine?: Engine;
  cpuThreads?: number;
  json?: boolean;
  quiet?: boolean;
}

export interface EncodeSummary {
  n: number;
  bits: number;
  task: string;
  seconds: number;
  /** Where it ran: the WebGPU adapter, or the WebAssembly engine and its threads. */
  device: string;
  engine: 'webgpu' | 'wasm';
  /** int8 (n, bits) +-1, or uint8 (n, ceil(bits/8)) packed with --packed. */
  codes: 'int8' | 'packed';
  out: string;
  features?: string;
}

/** The per-object shape the model takes, as a .npy shape after n. */
function objectShape(spec: ModelSpec): number[] {
  const { channels, height, width } = spec.input;
  return spec.task === 'video' ? [spec.frames, channels, height, width] : [channels, height, width];
}

/** Reads X.npy and checks dtype, shape and range against the model, or says exactly what is wrong. */
async function readInput(path: string, spec: ModelSpec): Promise<{ data: Float32Array; n: number }> {
  const arr = await readNpyFile(path);
  const per = objectShape(spec);
  const layout = spec.task === 'video' ? 'NTCHW' : 'NCHW';
  const want = `(n, ${per.join(', ')})`;
  if (arr.dtype !== 'float32') {
    throw new CliError(
      `--input ${path}: expected float32 pixels ${want} (${layout}), found ${arr.dtype}`,
      'convert with x.astype(numpy.float32); pixels are in [0, 1], the model normalises them itself',
    );
  }
  if (arr.shape.length !== per.length + 1 || per.some((d, i) => arr.shape[i + 1] !== d)) {
    throw new CliError(
      `--input ${path}: the model takes ${layout} arrays of shape ${want}, found (${arr.shape.join(', ')})`,
      spec.task === 'video'
        ? `each object is ${spec.frames} frames of ${per.slice(1).join('x')} (C x H x W)`
        : 'resize the images to the model input and put channels first',
    );
  }
  const data = arr.data as Float32Array;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!(v >= 0 && v <= 1)) {
      const obj = Math.floor(i / (data.length / arr.shape[0]));
      throw new CliError(
        `--input ${path}: pixel values must lie in [0, 1], found ${v} at flat index ${i} (object ${obj})`,
        'scale 8-bit images by 1/255; do not normalise by mean/std (the model does)',
      );
    }
  }
  return { data, n: arr.shape[0] };
}

/** Runs the command; returns the summary it prints. */
export async function runEncode(o: EncodeOptions): Promise<EncodeSummary> {
  for (const [flag, path] of [
    ['--out', o.out],
    ['--features', o.features],
  ] as const) {
    // A folder is not an output file (and a temporary folder would land beside it, in its parent).
    if (path && statSync(path, { throwIfNoEntry: false })?.isDirectory())
      throw new CliError(`${flag} ${path} is a folder; give the path of the .npy file to write`);
  }
  if (o.features && resolve(o.features) === resolve(o.out)) {
    throw new CliError('--out and --features must be different files');
  }
  return withOptionalGpu(o, async (gpu) => {
    const net = await openNetwork(gpu, o.model, o.engine, o.cpuThreads);
    try {
      if (o.packed && (net.bits < MIN_BITS || net.bits > MAX_BITS)) {
        throw new CliError(
          `--packed: this model's codes have ${net.bits} bits; packed codes (and dhta search) take ${MIN_BITS} to ${MAX_BITS}`,
          'leave out --packed for int8 +-1 codes',
        );
      }
      const { data, n } = await readInput(o.input, net.spec);
      const t0 = performance.now();
      let last = 0;
      const { features, codes } = await net.encode(data, n, {
        batch: o.batch,
        onProgress: (done, total) => {
          const now = performance.now();
          if (!o.quiet && !o.json && (now - last > 2000 || done === total)) {
            last = now;
            process.stderr.write(`encode: ${done}/${total} objects (${((now - t0) / 1000).toFixed(1)} s)\n`);
          }
        },
      });
      const seconds = (performance.now() - t0) / 1000;
      // Both files appear together or not at all: written under temporary names in a fresh folder beside
      // --out, then renamed into place.
      // Packed: the Hamming library's own packing (a code bit is 1 where f(x) >= 0), 8 bits per byte, LSB first.
      const outs: [string, Int8Array | Uint8Array | Float32Array, number[]][] = [
        o.packed
          ? [o.out, toFaissBytes(fromPm1(net.bits, codes)), [n, bytesPerCode(net.bits)]]
          : [o.out, codes, [n, net.bits]],
      ];
      if (o.features) outs.push([o.features, features, [n, net.bits]]);
      // Every output's folder first, then the files under temporary names beside --out, then the renames.
      for (const [path] of outs) makeDir(dirname(resolve(path)), 'the folder of');
      const tmp = join(dirname(resolve(o.out)), `.dhta-encode-${process.pid}-${basename(o.out)}`);
      makeDir(tmp, 'a temporary folder');
      try {
        for (const [i, [, arr, shape]] of outs.entries())
          await writeNpyFile(join(tmp, `${i}.npy`), arr, shape);
        for (const [i, [path]] of outs.entries()) renameSync(join(tmp, `${i}.npy`), path);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
      return {
        n,
        bits: net.bits,
        task: net.spec.task,
        seconds,
        device: deviceOf(net),
        engine: net.engine.kind,
        codes: o.packed ? 'packed' : 'int8',
        out: o.out,
        ...(o.features ? { features: o.features } : {}),
      };
    } finally {
      net.destroy();
    }
  });
}

export function registerEncode(program: Command): void {
  program
    .command('encode')
    .description(
      'Encode images (float32 NCHW) or videos (float32 NTCHW) with pixels in [0, 1] through a model bundle: ' +
        "codes sign(f(x)) as int8 +-1 (n x bits), or with --packed as uint8 bytes in FAISS's layout, which " +
        '`dhta search --db/--queries` reads; optionally f(x) as float32.',
    )
    .requiredOption('--model <DIR>', 'model bundle folder (model.json + weights.safetensors)')
    .requiredOption('--input <X.npy>', 'float32 pixels in [0, 1]: (n, C, H, W), or (n, T, C, H, W) for video')
    .requiredOption(
      '--out <codes.npy>',
      'where the codes are written: int8 +-1 (n, bits), or with --packed uint8 (n, ceil(bits/8))',
    )
    .option(
      '--packed',
      'write the codes packed 8 bits per byte, least-significant bit first (bit j of a code is bit j%8 of byte ' +
        'j/8; a bit is 1 where f(x) >= 0), as FAISS stores binary codes and `dhta search` reads them',
    )
    .option('--features <F.npy>', 'also write f(x), float32 (n, bits)')
    .option(
      '--batch <N>',
      'objects per GPU chunk (default: as many as fit the device)',
      positiveInt('--batch'),
    )
    .option(
      '--engine <E>',
      `${ENGINE_HELP.replace('the attack loop runs', 'the network runs')}: auto, webgpu or wasm`,
      engineOption,
    )
    .option(
      '--cpu-threads <T>',
      'threads of the WebAssembly engine, 1 to 16 (default: the logical CPUs)',
      positiveInt('--cpu-threads', 16),
    )
    .option('--backend <B>', 'WebGPU backend (vulkan, metal, d3d12, ...)', backendOption)
    .option('--adapter <name>', 'adapter name as Dawn reports it')
    .option(
      '--json',
      "print one JSON line: {n, bits, task, seconds, device, engine, codes ('int8' or 'packed'), out, features}",
    )
    .option('--quiet', 'no progress lines')
    .action(async (o: EncodeOptions) => {
      const s = await runEncode(o);
      if (o.json) return printJson(s);
      console.log(
        `encoded ${s.n} ${s.task === 'video' ? 'videos' : 'images'} to ${s.bits}-bit codes in ${s.seconds.toFixed(2)} s on ${s.device}`,
      );
      console.log(
        `wrote ${s.out} (${s.codes === 'packed' ? `uint8, ${Math.ceil(s.bits / 8)} bytes per code, FAISS layout` : 'int8 +-1'})` +
          `${s.features ? ` and ${s.features}` : ''}`,
      );
    });
}
