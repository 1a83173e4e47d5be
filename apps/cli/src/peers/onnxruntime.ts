// The benchmark peer onnxruntime-node (CPU execution provider, MLAS kernels): installed on first use into
// bench/peers/onnxruntime/node_modules by `npm ci --ignore-scripts` from that folder's committed lockfile
// (it is not a workspace dependency, and its install script, which downloads CUDA parts, is never run: the
// CPU binary ships in the package), then imported by absolute path at run time (never bundled).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CliError } from '../errors.js';
import { ONNX_INPUT, ONNX_OUTPUT } from './onnx.js';

export const ORT_PACKAGE = 'onnxruntime-node';
/** The peer's folder inside the repository. */
export const ORT_PEER_PATH = 'bench/peers/onnxruntime';

/**
 * The peer's folder: bench/peers/onnxruntime above this module (apps/cli/dist for the bundle, apps/cli/src/...
 * for the sources), or null when this CLI does not run from a checkout of the repository.
 */
export function ortPeerDir(from = dirname(fileURLToPath(import.meta.url))): string | null {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, ORT_PEER_PATH, 'package.json'))) return join(dir, ORT_PEER_PATH);
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/** The exact onnxruntime-node version the peer's package.json pins. */
export function pinnedOrtVersion(dir: string): string {
  const file = join(dir, 'package.json');
  let v: unknown;
  try {
    v = (JSON.parse(readFileSync(file, 'utf8')) as { dependencies?: Record<string, unknown> }).dependencies?.[
      ORT_PACKAGE
    ];
  } catch (e) {
    throw new CliError(`bench encode: cannot read ${file}: ${(e as Error).message}`);
  }
  if (typeof v !== 'string' || !/^\d+\.\d+\.\d+$/.test(v))
    throw new CliError(
      `bench encode: ${file} must pin ${ORT_PACKAGE} at an exact version (x.y.z), found ${JSON.stringify(v)}`,
    );
  return v;
}

/** The installed onnxruntime-node version in `dir`'s node_modules, or null. */
export function installedOrtVersion(dir: string): string | null {
  try {
    const p = JSON.parse(readFileSync(join(dir, 'node_modules', ORT_PACKAGE, 'package.json'), 'utf8'));
    return typeof p.version === 'string' ? p.version : null;
  } catch {
    return null;
  }
}

export interface EnsureOrtOptions {
  /** The peer's folder (default: ortPeerDir()). */
  dir?: string;
  /** The npm program (default "npm"). */
  npm?: string;
  /** Environment of npm (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Where npm's output and the lines saying what happens go (default stderr). */
  log?: (text: string) => void;
}

/**
 * Makes sure the pinned onnxruntime-node is installed in the peer's folder, running `npm ci --ignore-scripts`
 * there when it is missing or another version; returns the folder. Errors say what failed and what to do
 * (no npm; no network; no folder).
 */
export async function ensureOnnxRuntime(o: EnsureOrtOptions = {}): Promise<{ dir: string; version: string }> {
  const log = o.log ?? ((t: string) => process.stderr.write(t));
  const dir = o.dir ?? ortPeerDir();
  if (!dir || !existsSync(join(dir, 'package.json')))
    throw new CliError(
      `bench encode --peer onnxruntime: cannot find the peer's folder ${ORT_PEER_PATH} (its package.json)` +
        (dir ? ` at ${dir}` : ' above this program'),
      'run the bench from a checkout of the dhta repository (pnpm dhta bench encode ...)',
    );
  const version = pinnedOrtVersion(dir);
  if (installedOrtVersion(dir) === version) return { dir, version };
  if (!existsSync(join(dir, 'package-lock.json')))
    throw new CliError(
      `bench encode --peer onnxruntime: ${join(dir, 'package-lock.json')} is missing`,
      'restore it from git',
    );
  const npm = o.npm ?? 'npm';
  const args = ['ci', '--ignore-scripts', '--no-audit', '--no-fund'];
  const shown = relative(process.cwd(), dir) || '.';
  log(
    `dhta: installing the benchmark peer ${ORT_PACKAGE} ${version} (CPU; about 300 MB, once) into ` +
      `${shown}/node_modules: (cd ${shown} && ${npm} ${args.join(' ')})\n`,
  );
  const tail: string[] = [];
  const code = await new Promise<number | null>((ok, fail) => {
    const child = spawn(npm, args, {
      cwd: dir,
      env: o.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (chunk: Buffer): void => {
      const text = chunk.toString();
      log(text);
      tail.push(...text.split('\n').filter((l) => l.trim() !== ''));
      tail.splice(0, Math.max(0, tail.length - 6));
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (e: NodeJS.ErrnoException) => {
      fail(
        e.code === 'ENOENT'
          ? new CliError(
              `bench encode --peer onnxruntime: cannot run ${npm} to install ${ORT_PACKAGE}: no such program`,
              `install npm (it comes with Node.js), or install the peer yourself: cd ${dir} && npm ci --ignore-scripts`,
            )
          : new CliError(`bench encode --peer onnxruntime: cannot run ${npm}: ${e.message}`),
      );
    });
    child.on('close', (c) => ok(c));
  });
  if (code !== 0)
    throw new CliError(
      `bench encode --peer onnxruntime: \`${npm} ${args.join(' ')}\` in ${dir} failed (exit code ${code}): ` +
        (tail.join(' | ') || 'no output'),
      `${ORT_PACKAGE} is downloaded from npm's registry on first use: check the network (and npm's proxy ` +
        `settings), then run again, or run \`npm ci --ignore-scripts\` in ${dir} yourself`,
    );
  const got = installedOrtVersion(dir);
  if (got !== version)
    throw new CliError(
      `bench encode --peer onnxruntime: after npm ci, expected ${ORT_PACKAGE} ${version} in ${dir}/node_modules, found ${got ?? 'none'}`,
    );
  return { dir, version };
}

interface OrtTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface OrtModule {
  InferenceSession: { create(model: Uint8Array, options: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => OrtTensor;
}

/** Imports the installed onnxruntime-node by absolute path (a computed specifier: bundlers leave it alone). */
async function importOrt(dir: string): Promise<OrtModule> {
  let entry: string;
  try {
    entry = createRequire(join(dir, 'package.json')).resolve(ORT_PACKAGE);
  } catch (e) {
    throw new CliError(
      `bench encode --peer onnxruntime: cannot find ${ORT_PACKAGE} in ${dir}: ${(e as Error).message}`,
    );
  }
  try {
    const m = (await import(pathToFileURL(entry).href)) as OrtModule & { default?: OrtModule };
    return m.InferenceSession ? m : (m.default as OrtModule);
  } catch (e) {
    throw new CliError(
      `bench encode --peer onnxruntime: cannot load ${ORT_PACKAGE} (${(e as Error).message.split('\n')[0]})`,
      `it ships CPU binaries for Linux, macOS and Windows on x64 and arm64; reinstall with: cd ${dir} && rm -rf node_modules && npm ci --ignore-scripts`,
    );
  }
}

/** An ONNX model opened on ONNX Runtime's CPU execution provider. */
export class OrtRunner {
  private constructor(
    private readonly ort: OrtModule,
    private readonly session: OrtSession,
    readonly version: string,
    readonly threads: number,
  ) {}

  /** `threads`: intra-op threads (MLAS's thread pool); inter-op 1, sequential execution, all graph optimisations. */
  static async open(dir: string, version: string, model: Uint8Array, threads: number): Promise<OrtRunner> {
    const ort = await importOrt(dir);
    let session: OrtSession;
    try {
      session = await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (e) {
      throw new CliError(
        `bench encode --peer onnxruntime: ONNX Runtime refused the model written from the bundle: ${(e as Error).message}`,
      );
    }
    return new OrtRunner(ort, session, version, threads);
  }

  /** f(x) of n images (pixels [n, C, H, W] in [0, 1]), run `batch` images at a time. */
  async encode(
    pixels: Float32Array,
    n: number,
    shape: [number, number, number],
    batch: number,
    bits: number,
  ): Promise<Float32Array> {
    const size = shape[0] * shape[1] * shape[2];
    const features = new Float32Array(n * bits);
    for (let start = 0; start < n; start += batch) {
      const m = Math.min(batch, n - start);
      const x = new this.ort.Tensor('float32', pixels.subarray(start * size, (start + m) * size), [
        m,
        ...shape,
      ]);
      const out = (await this.session.run({ [ONNX_INPUT]: x }))[ONNX_OUTPUT];
      const data = out?.data;
      if (!(data instanceof Float32Array) || data.length !== m * bits)
        throw new CliError(
          `bench encode --peer onnxruntime: expected float32 features [${m}, ${bits}], found [${out?.dims.join(', ')}]`,
        );
      features.set(data, start * bits);
    }
    return features;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
