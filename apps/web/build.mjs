// Builds the web app into dist/: index.html, app.css, app.js (the page) and worker.js (the engines), bundled by
// esbuild for a browser (the packages' "browser" conditions: no Node module, no Dawn). Nothing is fetched from
// elsewhere at run time. The folder is replaced whole (built beside it, then renamed into place), so a server
// never sees half of a build; an import of a Node-only module fails the build.
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
export const WEB_DIST = join(here, 'dist');
const STATIC = join(here, 'static');

function isNodeOnly(path) {
  if (path.startsWith('node:')) return true;
  if (path === 'webgpu' || path.startsWith('webgpu/')) return true;
  return builtinModules.includes(path) || builtinModules.includes(path.split('/')[0]);
}

/** Newest modification time of the app's sources and of the packages it bundles (ms). */
export function newestSource() {
  const newest = (dir) => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name === 'test') continue;
      const p = join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }
    return t;
  };
  return Math.max(newest(join(here, 'src')), newest(STATIC), newest(join(here, '../../packages')));
}

/** Whether dist/ is missing or older than a source. */
export function isStale() {
  const stamp = join(WEB_DIST, 'app.js');
  return !existsSync(stamp) || statSync(stamp).mtimeMs < newestSource();
}

/**
 * Bundles the app into `outDir` (default dist/). Returns the source files in the bundle and any Node-only
 * import found (the build then fails).
 */
export async function buildWeb(outDir = WEB_DIST) {
  const nodeOnly = [];
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const result = await build({
      entryPoints: { app: join(here, 'src/main.ts'), worker: join(here, 'src/worker.ts') },
      outdir: tmp,
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      metafile: true,
      logLevel: 'silent',
      legalComments: 'none',
      plugins: [
        {
          name: 'no-node-modules',
          setup(b) {
            b.onResolve({ filter: /.*/ }, (args) => {
              if (!isNodeOnly(args.path)) return undefined;
              nodeOnly.push(`${args.path} (imported by ${relative(join(here, '../..'), args.importer)})`);
              return { path: args.path, external: true };
            });
          },
        },
      ],
    });
    if (nodeOnly.length) {
      throw new Error(`the web app's bundle imports Node-only modules: ${nodeOnly.join(', ')}`);
    }
    for (const f of ['index.html', 'app.css']) copyFileSync(join(STATIC, f), join(tmp, f));
    const old = `${outDir}.old-${process.pid}`;
    if (existsSync(outDir)) renameSync(outDir, old);
    renameSync(tmp, outDir);
    rmSync(old, { recursive: true, force: true });
    return { outDir, inputs: Object.keys(result.metafile.inputs), nodeOnly };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await buildWeb();
  console.log(`built ${relative(process.cwd(), r.outDir) || '.'} (${r.inputs.length} source files)`);
}
