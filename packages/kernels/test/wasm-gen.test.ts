// The committed WebAssembly bytes (src/**/*.wasm.gen.ts) must be what the text modules assemble to now: this
// fails after an edit of cpu.wat.ts or hamming.wat.ts until `pnpm --filter @dhta/kernels gen:wasm` is run.
import { describe, expect, it } from 'vitest';
import { assemble, CPU_MAX_PAGES, WASM_MODULES } from '../scripts/gen-wasm.ts';
import { hammingWasmBytes } from '../src/hamming/hamming.wasm.gen.ts';
import { cpuWasmBytes } from '../src/wasm/cpu.wasm.gen.js';
import { MAX_MEMORY_BYTES } from '../src/wasm/runtime.js';

const committed: Record<string, () => Uint8Array> = {
  'src/wasm/cpu.wasm.gen.ts': cpuWasmBytes,
  'src/hamming/hamming.wasm.gen.ts': hammingWasmBytes,
};

describe('generated WebAssembly', () => {
  it('covers every module', () => {
    expect(WASM_MODULES.map((m) => m.out).sort()).toEqual(Object.keys(committed).sort());
  });

  for (const m of WASM_MODULES) {
    it(`${m.out} holds what ${m.source} assembles to`, async () => {
      const fresh = await assemble(m);
      const bytes = committed[m.out]();
      expect(bytes.length, `${m.out} is stale: run \`pnpm --filter @dhta/kernels gen:wasm\``).toBe(
        fresh.length,
      );
      const first = bytes.findIndex((b, i) => b !== fresh[i]);
      expect(first, `${m.out} is stale (first difference at byte ${first}): run gen:wasm`).toBe(-1);
    });
  }

  it("declares the engine's memory maximum", () => {
    expect(CPU_MAX_PAGES * 65536).toBe(MAX_MEMORY_BYTES);
  });
});
