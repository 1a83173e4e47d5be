// `pnpm dhta ...`: rebuilds the bundle when a source is newer than it, then runs it in this same process, so
// that Ctrl-C or a kill of the process the user started stops the work (no child left running as an orphan).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'dist/dhta.mjs');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name === 'test') continue;
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}
const root = join(here, '../..');
const sources = Math.max(newest(join(here, 'src')), newest(join(root, 'packages')));
if (!existsSync(out) || statSync(out).mtimeMs < sources) {
  const { bundle } = await import('./build.mjs');
  await bundle();
}
// The bundle reads its arguments from process.argv[2...], which are this script's.
await import(pathToFileURL(out).href);
