import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createProgress, unitOf } from '../src/progress.js';

describe('progress lines', () => {
  let lines: string[];
  let clock: number;
  const tty = process.stderr.isTTY;
  beforeEach(() => {
    lines = [];
    clock = 0;
    // Plain lines (not a bar), as in logs and CI.
    Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    vi.spyOn(performance, 'now').mockImplementation(() => clock);
  });
  afterEach(() => {
    vi.restoreAllMocks();
    Object.defineProperty(process.stderr, 'isTTY', { value: tty, configurable: true });
  });

  /** Two cells of a reproduce run: the same phase names come back after a log line. */
  function twoCells(): void {
    const p = createProgress({ intervalMs: 0 });
    for (const cell of [1, 2]) {
      p.log(`== table1 ${cell}/2`);
      p.update('encode database', 30_000, 60_000);
      clock += 40_000;
      p.update('encode database', 60_000, 60_000);
      for (const method of ['p2p', 'dhta']) {
        for (let done = 0; done <= 10_000; done += 5_000) {
          p.update(method, done, 10_000, 'd(anchor) 9.00  800 q-it/s');
          clock += 6_000;
        }
      }
    }
    p.stop();
  }

  it('name the unit each phase counts', () => {
    twoCells();
    const progress = lines.filter((l) => !l.startsWith('=='));
    expect(progress.filter((l) => l.startsWith('p2p:'))[0]).toMatch(/^p2p: 0\/10000 query-iterations \(0%\)/);
    expect(progress.find((l) => l.startsWith('encode database:'))).toMatch(/30000\/60000 items/);
    expect(progress.every((l) => /\d+\/\d+ (query-iterations|items) /.test(l))).toBe(true);
    expect(unitOf('dhta')).toBe('query-iterations');
    expect(unitOf('epoch 2/3')).toBe('batches');
  });

  it('show elapsed seconds that never run backwards across phases and cells', () => {
    twoCells();
    const elapsed = lines
      .filter((l) => !l.startsWith('=='))
      .map((l) => {
        // The first "N s" of the line: the elapsed time.
        const m = / (\d+) s\b/.exec(l);
        expect(m, l).not.toBeNull();
        return Number(m![1]);
      });
    expect(elapsed.length).toBeGreaterThan(10);
    for (let i = 1; i < elapsed.length; i++) expect(elapsed[i]).toBeGreaterThanOrEqual(elapsed[i - 1]);
    // The second cell's DHTA phase ends at the run's clock (2 x 40 s of encoding, 5 x 3 x 6 s of attacks and
    // the last 6 s step of the first cell: 146 s), with its own time since it began.
    expect(lines.at(-1)).toMatch(
      /^dhta: 10000\/10000 query-iterations \(100%\), elapsed 146 s \(this phase 12 s\)/,
    );
  });
});
