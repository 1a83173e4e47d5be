// readNpy against numpy.load: fixtures/npy/numpy-verdicts.json holds .npy files (hand-written edge cases
// and seeded random headers with mutations) with what numpy 2.4 said of each (make-numpy-verdicts.py).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HammingError, readNpy } from '../src/hamming/index.ts';

interface Verdict {
  ok: boolean;
  dtype?: string;
  shape?: number[];
  fortran?: boolean;
  data?: string | null;
  error?: string;
}
interface Case {
  name: string;
  hex: string;
  numpy: Verdict;
}

const fixture = JSON.parse(
  readFileSync(join(import.meta.dirname, 'fixtures', 'npy', 'numpy-verdicts.json'), 'utf8'),
) as { numpy: string; cases: Case[] };

function ours(
  c: Case,
): { ok: true; dtype: string; shape: number[]; data: string } | { ok: false; error: HammingError } {
  try {
    const a = readNpy(Buffer.from(c.hex, 'hex'), c.name);
    return {
      ok: true,
      dtype: a.dtype,
      shape: a.shape,
      data: Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).toString('hex'),
    };
  } catch (e) {
    if (!(e instanceof HammingError)) throw new Error(`${c.name}: not a HammingError: ${(e as Error).stack}`);
    return { ok: false, error: e };
  }
}

/** Files numpy reads that readNpy refuses on purpose, each with the reason its message gives. */
const DELIBERATE = [
  /expected one of the dtypes .* found descr/, // other dtypes, big-endian multi-byte ones, aliases ('float32')
  /expected a descr that is one of the dtypes/, // structured dtypes
  /expected C order \(fortran_order False\), found Fortran order/,
  /trailing bytes/, // numpy ignores bytes after the data
  /expected dimensions of at most 2\^53-1/, // empty arrays with dimensions past 2^53
];

describe(`readNpy agrees with numpy.load (${fixture.cases.length} files, numpy ${fixture.numpy})`, () => {
  it('reads what numpy reads, to the byte, and refuses with a HammingError what numpy refuses', () => {
    let agreed = 0;
    let deliberate = 0;
    for (const c of fixture.cases) {
      const r = ours(c);
      if (!c.numpy.ok) {
        expect(r.ok, `${c.name}: numpy refuses it (${c.numpy.error}), readNpy read it`).toBe(false);
        if (!r.ok) expect(['BAD_NPY', 'TRUNCATED']).toContain(r.error.code);
        agreed++;
      } else if (r.ok) {
        expect({ name: c.name, dtype: r.dtype, shape: r.shape }).toEqual({
          name: c.name,
          dtype: c.numpy.dtype,
          shape: c.numpy.shape,
        });
        if (c.numpy.data != null) expect(r.data, c.name).toBe(c.numpy.data);
        agreed++;
      } else {
        const reason = DELIBERATE.find((re) => re.test(r.error.message));
        expect(reason, `${c.name}: numpy reads it, readNpy says ${r.error.message}`).toBeDefined();
        expect(r.error.code).toBe('BAD_NPY');
        deliberate++;
      }
    }
    expect(agreed + deliberate).toBe(fixture.cases.length);
    expect(agreed).toBeGreaterThan(0.8 * fixture.cases.length);
  });

  const byName = new Map(fixture.cases.map((c) => [c.name, c]));
  const named = (name: string) => {
    const c = byName.get(name);
    if (!c) throw new Error(`no fixture case ${name}`);
    return c;
  };

  it('takes the last of repeated keys, as a Python dict does', () => {
    const r = ours(named('two shape keys: the last wins'));
    expect(r.ok && r.shape).toEqual([2, 1, 28, 56]);
    const d = ours(named('two descr keys: the last wins'));
    expect(d.ok && d.dtype).toBe('uint8');
  });

  it.each([
    'an extra key',
    'fortran_order Falsey',
    'a shape key inside a string',
    'no closing brace',
    'text before the dict',
    'text after the dict',
    'format 1.1',
    'a NUL in the header',
    'a header over 10000 characters',
    '65 dimensions',
    'a Python 2 long, format 3.0',
    'a leading zero',
    'an indented first line',
    'brackets 201 deep',
    'a complex sum',
  ])('refuses, as numpy does: %s', (name) => {
    const c = named(name);
    expect(c.numpy.ok).toBe(false);
    const r = ours(c);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('BAD_NPY');
      expect(r.error.message).toContain(name); // the file's name
      expect(r.error.message).toMatch(/expected .*found/);
    }
  });

  it.each([
    'a Python 2 long, format 1.0',
    'comments and line breaks',
    'parentheses around the dict',
    'hex, octal, binary and + ints',
    '-(0) and 1_0',
    'escaped and concatenated keys',
    'no newline, no padding',
    'a line break before the dict',
    'brackets 200 deep',
    '64 dimensions',
    'version 3.0',
    "descr '=f4'",
  ])('reads, as numpy does: %s', (name) => {
    const c = named(name);
    expect(c.numpy.ok).toBe(true);
    const r = ours(c);
    expect(r.ok && r.shape).toEqual(c.numpy.shape);
  });
});
