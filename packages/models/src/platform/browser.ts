// The browser side of the models package's platform seam (see node.ts): a page has no file system, so the
// bundle-folder functions (loadBundle, saveBundle, ...) fail with a message that says what to use instead
// (fetch the two files and call parseSpec and parseSafetensors). Paths are joined as POSIX paths, for messages.
// Imports nothing of Node's, so the package bundles for a browser.

/** Which host the package was built for. */
export const runtime: 'node' | 'browser' = 'browser';

function noFileSystem(what: string): Error {
  return new Error(
    `${what}: a browser has no file system; fetch model.json and weights.safetensors and pass them to ` +
      'parseSpec and parseSafetensors (then createNetwork)',
  );
}

export async function readFile(path: string): Promise<Uint8Array> {
  throw noFileSystem(`reading ${path}`);
}
export async function writeFile(path: string, _data: string | Uint8Array): Promise<void> {
  throw noFileSystem(`writing ${path}`);
}
export async function mkdir(path: string, _options?: { recursive?: boolean }): Promise<string | undefined> {
  throw noFileSystem(`making ${path}`);
}
export async function rename(from: string, _to: string): Promise<void> {
  throw noFileSystem(`renaming ${from}`);
}
export async function rm(path: string, _options?: { recursive?: boolean; force?: boolean }): Promise<void> {
  throw noFileSystem(`removing ${path}`);
}

/** Random bytes from the Web Crypto API, as a hex string's source (bundle.ts names temporary folders). */
export function randomBytes(n: number): { toString(encoding: 'hex'): string } {
  const bytes = new Uint8Array(n);
  (globalThis as unknown as { crypto: { getRandomValues(a: Uint8Array): void } }).crypto.getRandomValues(
    bytes,
  );
  return { toString: () => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('') };
}

export function join(...parts: string[]): string {
  return parts
    .filter((p) => p !== '')
    .join('/')
    .replace(/\/{2,}/g, '/');
}
export function dirname(path: string): string {
  const i = path.replace(/\/+$/, '').lastIndexOf('/');
  return i < 0 ? '.' : i === 0 ? '/' : path.slice(0, i);
}
export function basename(path: string): string {
  const p = path.replace(/\/+$/, '');
  return p.slice(p.lastIndexOf('/') + 1);
}
export function resolve(...parts: string[]): string {
  return join(...parts);
}
