// The browser build of @dhta/kernels (DESIGN.md, platform seams): bundled for a browser, the package's
// entries import none of Dawn's `webgpu` and no Node module (`node:fs`, `node:worker_threads`, `node:os`,
// `node:v8`, ...); the platform module is the browser's.
import { describe, expect, it } from 'vitest';
import { bundleForBrowser } from './browser/bundle.js';

/** The entries a web app imports (`@dhta/kernels`, `/wasm`, `/reference`). */
const ENTRIES = ['src/index.ts', 'src/wasm/index.ts', 'src/reference/index.ts'];

describe('the browser bundle', () => {
  it('of the package entries references no Node-only module', async () => {
    const bundle = await bundleForBrowser(ENTRIES);
    const found = bundle.nodeOnly.map((f) => `${f.module} (imported by ${f.importer})`);
    expect(found, `Node-only imports in the browser bundle: ${found.join(', ')}`).toEqual([]);
    // Nothing left in the output text either (a require or import of a Node module that esbuild kept).
    for (const code of bundle.code) {
      const refs = code.match(
        /\b(?:import|require)\s*\(?\s*["'](?:node:[\w/]+|webgpu|fs|worker_threads|os|v8)["']/g,
      );
      expect(refs, `Node-only module references in the output: ${refs?.join(', ')}`).toBeNull();
    }
    expect(bundle.inputs).toContain('src/platform/browser.ts');
    expect(bundle.inputs).not.toContain('src/platform/node.ts');
    // The engines are in it: the WebGPU and WebAssembly ones, with the helper-thread seam.
    expect(bundle.inputs).toContain('src/gpu/engine.ts');
    expect(bundle.inputs).toContain('src/wasm/runtime.ts');
  });

  it('finds the Node modules of the Node platform module (the check can fail)', async () => {
    const bundle = await bundleForBrowser(['src/platform/node.ts']);
    const modules = bundle.nodeOnly.map((f) => f.module).sort();
    expect(modules).toEqual(['node:os', 'node:v8', 'node:worker_threads', 'webgpu']);
  });
});
