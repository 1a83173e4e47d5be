// The Node side of the models package's platform seam: the file system, paths and random bytes that bundle.ts
// uses to read and write model bundle folders. browser.ts stands in for it in a browser build ("#platform").
export { randomBytes } from 'node:crypto';
export { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
export { basename, dirname, join, resolve } from 'node:path';

/** Which host the package was built for. */
export const runtime: 'node' | 'browser' = 'node';
