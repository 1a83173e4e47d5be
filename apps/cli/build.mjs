// Bundles the CLI into one runnable file (dist/dhta.mjs). dawn.node (npm `webgpu`) stays external: it is a
// native addon found next to the bundle's node_modules, or carried beside it on GPU hosts.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
export async function bundle() {
  await build({
    entryPoints: [join(here, 'src/main.ts')],
    outfile: join(here, 'dist/dhta.mjs'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    external: ['webgpu'],
    banner: {
      js: '#!/usr/bin/env node\nimport { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);',
    },
    logLevel: 'warning',
    sourcemap: 'linked',
  });
}
if (process.argv[1] === fileURLToPath(import.meta.url)) await bundle();
