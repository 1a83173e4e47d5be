// Bundles parts of @dhta/kernels the way a web app would (esbuild, platform 'browser': the package's
// "#platform" import resolves to src/platform/browser.ts) and records every import of a Node-only module.
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** An import of a module that exists only in Node: a builtin (`node:fs`, `os`, ...) or Dawn's `webgpu`. */
export interface NodeOnlyImport {
  module: string;
  importer: string;
}

function isNodeOnly(path: string): boolean {
  if (path.startsWith('node:')) return true;
  if (path === 'webgpu' || path.startsWith('webgpu/')) return true;
  return builtinModules.includes(path) || builtinModules.includes(path.split('/')[0]);
}

/** Marks Node-only imports external (so the build goes on) and records who imports them. */
function recordNodeOnly(found: NodeOnlyImport[]): Plugin {
  return {
    name: 'record-node-only',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (!isNodeOnly(args.path)) return undefined;
        found.push({ module: args.path, importer: relative(PACKAGE_ROOT, args.importer) });
        return { path: args.path, external: true };
      });
    },
  };
}

export interface BrowserBundle {
  /** The bundled JavaScript of each entry point (ESM). */
  code: string[];
  /** Source files in the bundle, relative to the package. */
  inputs: string[];
  nodeOnly: NodeOnlyImport[];
}

/** Bundles the entry points (paths relative to the package) for a browser. */
export async function bundleForBrowser(entries: string[]): Promise<BrowserBundle> {
  const nodeOnly: NodeOnlyImport[] = [];
  const result = await build({
    entryPoints: entries.map((e) => join(PACKAGE_ROOT, e)),
    absWorkingDir: PACKAGE_ROOT,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    outdir: join(PACKAGE_ROOT, 'browser-bundle'),
    metafile: true,
    logLevel: 'silent',
    plugins: [recordNodeOnly(nodeOnly)],
  });
  return {
    code: result.outputFiles.filter((f) => f.path.endsWith('.js')).map((f) => f.text),
    inputs: Object.keys(result.metafile.inputs),
    nodeOnly,
  };
}
