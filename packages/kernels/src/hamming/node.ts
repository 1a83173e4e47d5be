/**
 * The Node-only seam of the Hamming search, and the Node entry point (`@dhta/hamming/node`; in the workspace,
 * `@dhta/kernels/hamming` re-exports it). Importing it installs Node's worker threads, file system, core
 * count and native CRC-32 (see platform.ts), then it exports the whole portable API (lib.ts) plus the
 * functions that read or write files. No other module of the search imports a Node module.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import * as zlib from 'node:zlib';
import { type HammingPlatform, setHammingPlatform } from './platform.ts';

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

const NODE_PLATFORM: HammingPlatform = {
  name: 'node',
  availableParallelism: () => availableParallelism(),
  startWorker: (source, workerData) => new Worker(source, { eval: true, workerData }),
  readFile: async (path) => {
    const bytes = await readFile(path);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  },
  writeFileAtomic: async (path, bytes) => {
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  },
  // zlib.crc32 exists from Node 20.15 and 22.2 on.
  crc32: typeof nativeCrc32 === 'function' ? (bytes) => nativeCrc32(bytes) >>> 0 : null,
};

setHammingPlatform(NODE_PLATFORM);

export { readIndexFile, writeFileAtomic } from './file.ts';
export * from './lib.ts';
export { readNpyFile, writeNpyFile } from './npy.ts';
