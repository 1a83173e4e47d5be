// A model bundle: a folder holding model.json (the ModelSpec) and weights.safetensors (float32, PyTorch
// names and layouts). Saving is atomic: the folder is written under a temporary name beside the target,
// then renamed into place, so a crash never leaves a half-written bundle.
// Files, paths and random bytes through the package's platform seam ("#platform": Node's modules, or in a
// browser build stand-ins that say a page has no file system).
import {
  basename,
  dirname,
  join,
  mkdir,
  randomBytes,
  readFile,
  rename,
  resolve,
  rm,
  writeFile,
} from '#platform';
import { ModelError } from './errors.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import { validateSpec, validateWeights } from './spec.js';
import type { ModelSpec, Weights } from './types.js';

export const SPEC_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.safetensors';

export interface ModelBundle {
  spec: ModelSpec;
  weights: Weights;
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new ModelError(
      'BAD_FILE',
      `${path}: expected ${what}, but it cannot be read (${(e as Error).message})`,
      {
        cause: e,
      },
    );
  }
}

/** Parses and validates model.json text (errors name `source`). */
export function parseSpec(text: string, source = SPEC_FILE): ModelSpec {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelError('BAD_SPEC', `${source}: not valid JSON (${(e as Error).message})`);
  }
  return validateSpec(json, source);
}

/**
 * Loads and validates a bundle folder: the spec, then the weights against it. Weights that hold NaN or an
 * infinity are refused (BAD_SAFETENSORS, naming the tensor and the first bad index).
 */
export async function loadBundle(dir: string): Promise<ModelBundle> {
  const specPath = join(dir, SPEC_FILE);
  const weightsPath = join(dir, WEIGHTS_FILE);
  const spec = parseSpec(new TextDecoder().decode(await readBytes(specPath, 'a model.json')), specPath);
  const { weights } = readSafetensors(
    await readBytes(weightsPath, 'a weights.safetensors file'),
    weightsPath,
    { finite: true },
  );
  validateWeights(spec, weights, weightsPath);
  return { spec, weights };
}

/** Loads only model.json from a bundle folder. */
export async function loadSpec(dir: string): Promise<ModelSpec> {
  const specPath = join(dir, SPEC_FILE);
  return parseSpec(new TextDecoder().decode(await readBytes(specPath, 'a model.json')), specPath);
}

/**
 * Fills a folder under a temporary name beside `dir`, then puts it in place of `dir` (an existing folder is
 * replaced only once the new one is complete; a failure leaves `dir` as it was). `what` names the folder in
 * errors.
 */
export async function replaceDirAtomic(
  dir: string,
  what: string,
  fill: (tmp: string) => Promise<void>,
): Promise<void> {
  const target = resolve(dir);
  const parent = dirname(target);
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = join(parent, `.${basename(target)}.tmp-${tag}`);
  const old = join(parent, `.${basename(target)}.old-${tag}`);
  try {
    await mkdir(tmp, { recursive: true });
    await fill(tmp);
    let moved = false;
    try {
      await rename(target, old);
      moved = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    await rename(tmp, target);
    if (moved) await rm(old, { recursive: true, force: true });
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    if (e instanceof ModelError) throw e;
    throw new ModelError('BAD_FILE', `${target}: could not write the ${what} (${(e as Error).message})`, {
      cause: e,
    });
  }
}

/**
 * Writes a bundle folder atomically (validating spec and weights first). An existing folder at `dir` is
 * replaced only once the new one is complete.
 */
export async function saveBundle(dir: string, bundle: ModelBundle): Promise<void> {
  const spec = validateSpec(JSON.parse(JSON.stringify(bundle.spec)), 'spec');
  validateWeights(spec, bundle.weights, 'weights');
  await replaceDirAtomic(dir, 'model bundle', async (tmp) => {
    await writeFile(join(tmp, SPEC_FILE), `${JSON.stringify(spec, null, 2)}\n`);
    await writeFile(join(tmp, WEIGHTS_FILE), writeSafetensors(bundle.weights, { format: 'pt' }));
  });
}
