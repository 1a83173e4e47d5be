// The package's browser entry (package.json "exports", condition "browser": src/browser.ts) is index.ts without
// training, whose checkpoints live on disk (index.ts re-exports it: this checks that nothing else was added); and its platform seam ("#platform") has the same functions in
// both hosts, the browser's saying that a page has no file system.
import { describe, expect, it } from 'vitest';
import * as browserEntry from '../src/browser.js';
import * as full from '../src/index.js';
import * as browserPlatform from '../src/platform/browser.js';
import * as nodePlatform from '../src/platform/node.js';
import * as train from '../src/train.js';

describe('the browser entry', () => {
  it('exports everything index.ts does but training', () => {
    const expected = Object.keys(full)
      .filter((k) => !(k in train))
      .sort();
    expect(Object.keys(browserEntry).sort()).toEqual(expected);
    expect(Object.keys(full).filter((k) => k in train).length).toBeGreaterThan(0);
  });

  it("has a platform module with the Node one's functions, which fail with a clear message", async () => {
    expect(Object.keys(browserPlatform).sort()).toEqual(Object.keys(nodePlatform).sort());
    expect(browserPlatform.runtime).toBe('browser');
    await expect(browserPlatform.readFile('zoo/mnist-32/model.json')).rejects.toThrow(
      /a browser has no file system; fetch model.json and weights.safetensors/,
    );
    expect(browserPlatform.join('a/', 'b', 'c.json')).toBe('a/b/c.json');
    expect(browserPlatform.dirname('a/b/c.json')).toBe('a/b');
    expect(browserPlatform.basename('a/b/c.json')).toBe('c.json');
    expect(browserPlatform.randomBytes(4).toString('hex')).toMatch(/^[0-9a-f]{8}$/);
  });
});
