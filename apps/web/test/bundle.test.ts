// The web app's build: esbuild bundles the packages for a browser through their "browser" conditions (no Node
// module, no Dawn: the build fails on one), and the page's HTML and CSS name nothing outside the server.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildWeb } from '../build.mjs';

const root = mkdtempSync(join(tmpdir(), 'dhta-web-build-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the web build', () => {
  it("bundles the packages' browser sides and no Node module", async () => {
    const r = await buildWeb(join(root, 'dist'));
    expect(r.nodeOnly).toEqual([]);
    const inputs = r.inputs.map((p) => p.replace(/^(\.\.\/)+/, ''));
    for (const file of [
      'packages/models/src/platform/browser.ts',
      'packages/models/src/browser.ts',
      'packages/kernels/src/platform/browser.ts',
      'packages/kernels/src/hamming/lib.ts',
      'packages/kernels/src/wasm/runtime.ts',
      'packages/kernels/src/gpu/engine.ts',
      'packages/attack/src/attack.ts',
      'packages/eval/src/database.ts',
    ])
      expect(inputs, file).toContain(file);
    for (const file of [
      'packages/models/src/platform/node.ts',
      'packages/models/src/train.ts',
      'packages/kernels/src/platform/node.ts',
      'packages/kernels/src/hamming/node.ts',
      'packages/kernels/src/hamming/bench.ts',
    ])
      expect(inputs, file).not.toContain(file);
    for (const f of ['app.js', 'worker.js']) {
      const code = readFileSync(join(root, 'dist', f), 'utf8');
      // ES imports only: the Hamming search's worker source for Node is a string that names node:worker_threads.
      const refs = code.match(
        /\bimport\s*(?:\(\s*|[\w{}*\s,$]*from\s*)["'](?:node:[\w/]+|webgpu|fs|worker_threads|os|v8|crypto|path)["']/g,
      );
      expect(refs, f).toBeNull();
    }
  });

  it('names no resource outside the server in its HTML and CSS', () => {
    for (const f of ['index.html', 'app.css']) {
      const text = readFileSync(join(root, 'dist', f), 'utf8');
      expect(text.match(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/gi), f).toBeNull();
    }
  });
});
