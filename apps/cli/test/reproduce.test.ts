import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '@dhta/kernels/reference';
import { initWeights, saveBundle, smallCnn } from '@dhta/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCli, cliRunner, lastJson } from './cli-helper.js';
import { writeIdx } from './idx-fixture.js';

const root = mkdtempSync(join(tmpdir(), 'dhta-reproduce-'));
const dhta = cliRunner(join(root, 'cache'));

describe('dhta reproduce', () => {
  beforeAll(async () => {
    await buildCli();
    for (const bits of [8, 16]) {
      const spec = smallCnn(bits);
      await saveBundle(join(root, `model-${bits}`), { spec, weights: initWeights(spec, bits) });
    }
    const open = smallCnn(16);
    await saveBundle(join(root, 'open-16'), {
      spec: { ...open, card: { heldOutClasses: [2] } },
      weights: initWeights(open, 5),
    });
    writeIdx(join(root, 'idx'), new SeededRandom(7));
  });

  it('runs table1 over code lengths and fig7 over n_t, one resumable folder per cell, with a summary', () => {
    const common = [
      '--data',
      `idx:${join(root, 'idx')}`,
      '--model',
      join(root, 'model-{bits}'),
      '--queries',
      '2',
      '--iters',
      '3',
    ];
    const out = join(root, 't1');
    const r = dhta('reproduce', 'table1', ...common, '--bits', '8,16', '--out-dir', out, '--json');
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const s = lastJson(r);
    expect(s.rows.map((x: { label: string }) => x.label)).toEqual([
      't-MAP original',
      't-MAP noise',
      't-MAP p2p',
      't-MAP dhta',
      'MAP original',
    ]);
    for (const row of s.rows) expect(row.values).toHaveLength(2);
    expect(s.rows[3].paper).toEqual([null, 62.68]); // the paper has no 8-bit cell; DHTA at 16 bits: 62.68
    expect(existsSync(join(out, 'bits8', 'results.jsonl'))).toBe(true);
    expect(readFileSync(join(out, 'table1.md'), 'utf8')).toMatch(/\| t-MAP dhta \|/);
    // The same command with --resume redoes nothing and gives the same summary.
    const again = dhta(
      'reproduce',
      'table1',
      ...common,
      '--bits',
      '8,16',
      '--out-dir',
      out,
      '--json',
      '--resume',
    );
    expect(JSON.parse(again.stdout.trim().split('\n').at(-1) ?? '').rows).toEqual(s.rows);
    const f7 = dhta('reproduce', 'fig7', ...common, '--bits', '16', '--out-dir', join(root, 'f7'), '--json');
    expect(f7.code).toBe(0);
    const rows = JSON.parse(f7.stdout.trim().split('\n').at(-1) ?? '').rows;
    expect(rows).toHaveLength(8);
    expect(rows[0].label).toBe('DHTA t-MAP, n_t 1');
    const noOpenSet = dhta('reproduce', 'table6', ...common, '--bits', '16');
    expect(noOpenSet.code).not.toBe(0);
    expect(noOpenSet.stderr).toMatch(/lists no heldOutClasses in its card/);
    // Open set: targets only from the model's held-out class 2.
    const t6 = dhta(
      'reproduce',
      'table6',
      ...common.map((v) => v.replace('model-{bits}', 'open-{bits}')),
      '--bits',
      '16',
      '--out-dir',
      join(root, 't6'),
      '--json',
    );
    expect(t6.stderr).not.toMatch(/error/);
    expect(lastJson(t6).rows.map((r: { label: string }) => r.label)).toEqual([
      'DHTA t-MAP, n_t 5',
      'DHTA t-MAP, n_t 7',
      'DHTA t-MAP, n_t 9',
      'DHTA t-MAP, n_t 11',
      'MAP original',
    ]);
    const lines = readFileSync(join(root, 't6', 'bits16-nT11', 'results.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    for (const l of lines) expect(JSON.parse(l).target).toEqual([2]);
    const unknown = dhta('reproduce', 'table9', ...common);
    expect(unknown.stderr).toMatch(/unknown experiment "table9"/);
    const missing = dhta(
      'reproduce',
      'table1',
      '--data',
      `idx:${join(root, 'idx')}`,
      '--model',
      join(root, 'nope-{bits}'),
      '--bits',
      '8',
    );
    expect(missing.stderr).toMatch(/no 8-bit model at .*nope-8/);
  });
});
