import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SeededRandom } from '@dhta/kernels/reference';
import { initWeights, saveBundle, smallCnn } from '@dhta/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { PAPER_TABLES, paperColumnsFor } from '../src/report/paper.js';
import { originalScoredOnOwnLabel, writeCurveFigures } from '../src/reproduce-figures.js';
import { buildCli, cliRunner, lastJson } from './cli-helper.js';
import { writeIdx } from './idx-fixture.js';

const zooRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'zoo');

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
    // The zoo's open-set naming: <zoo>/<data>-<bits>-open (data idx:.../idx -> "idx"), its card's held-out classes.
    await saveBundle(join(root, 'zoo', 'idx-16-open'), {
      spec: { ...open, card: { heldOutClasses: [2] } },
      weights: initWeights(open, 6),
    });
    mkdirSync(join(root, 'empty-zoo'), { recursive: true });
    writeIdx(join(root, 'idx'), new SeededRandom(7));
  });

  const common = () => [
    '--data',
    `idx:${join(root, 'idx')}`,
    '--model',
    join(root, 'model-{bits}'),
    '--queries',
    '2',
    '--iters',
    '3',
  ];
  /** (query, target) per position of one method's lines in a cell's results.jsonl. */
  const pairs = (dir: string, method: string) =>
    readFileSync(join(dir, 'results.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l))
      .filter((l) => l.method === method)
      .sort((a, b) => a.position - b.position)
      .map((l) => [l.query, l.target]);

  it('runs table1 over code lengths and table6 over n_t, one resumable folder per cell, with a summary', () => {
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
    // Every row beside the paper's: ImageNet (Original/Noise too, MAP of Original from Table 5) and NUS-WIDE.
    expect(s.paperSources.map((p: { source: string }) => p.source)).toEqual([
      'ImageNet, VGG-11',
      'NUS-WIDE, VGG-11',
    ]);
    expect(s.rows.map((r: { papers: unknown[] }) => r.papers)).toEqual([
      [
        [null, 3.8],
        [null, 37.62],
      ],
      [
        [null, 3.29],
        [null, 37.34],
      ],
      [
        [null, 44.35],
        [null, 75.45],
      ],
      [
        [null, 62.68],
        [null, 82.85],
      ],
      [
        [null, 51.02],
        [null, null],
      ],
    ]);
    expect(readFileSync(join(out, 'table1.md'), 'utf8')).toMatch(
      /\| MAP original \| [\d.]+ \| [\d.]+ \| - \| 51\.02 \| - \| - \|/,
    );
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
    const noOpenSet = dhta('reproduce', 'table6', ...common, '--bits', '16');
    expect(noOpenSet.code).not.toBe(0);
    expect(noOpenSet.stderr).toMatch(/lists no heldOutClasses in its card/);
    // Open set: the zoo's <data>-<bits>-open model (held-out class 2 in its card); targets only from class 2.
    const zooArgs = common.filter((_, i) => i !== 2 && i !== 3); // without --model
    const t6 = dhta(
      'reproduce',
      'table6',
      ...zooArgs,
      '--zoo',
      join(root, 'zoo'),
      '--bits',
      '16',
      '--out-dir',
      join(root, 't6'),
      '--json',
    );
    expect(t6.stderr).not.toMatch(/error/);
    const s6 = lastJson(t6);
    expect(s6.rows.map((r: { label: string }) => r.label)).toEqual([
      'DHTA t-MAP, n_t 5',
      'DHTA t-MAP, n_t 7',
      'DHTA t-MAP, n_t 9',
      'DHTA t-MAP, n_t 11',
      'MAP original',
    ]);
    expect(s6.rows.map((r: { paper: unknown }) => r.paper)).toEqual([
      [33.67],
      [34.77],
      [37.34],
      [38.0],
      null,
    ]);
    const lines = readFileSync(join(root, 't6', 'bits16-nT11', 'results.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    for (const l of lines) expect(JSON.parse(l).target).toEqual([2]);
    // Absent: one clear error naming the command that trains it.
    const noZoo = dhta('reproduce', 'table6', ...zooArgs, '--zoo', join(root, 'empty-zoo'), '--bits', '16');
    expect(noZoo.code).not.toBe(0);
    expect(noZoo.stderr).toMatch(
      /table6 needs a 16-bit model trained without some classes; none at .*empty-zoo.idx-16-open/,
    );
    expect(noZoo.stderr).toMatch(/dhta train --data idx:.* --bits 16 .*--held-out 7,8,9 --out .*idx-16-open/);
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
  it('fig7: a paired sweep over n_t (same queries and target labels in every cell), drawn as a figure', () => {
    const args = common().map((v) => (v === '2' ? '4' : v)); // 4 queries
    const out = join(root, 'f7');
    const f7 = dhta('reproduce', 'fig7', ...args, '--bits', '16', '--out-dir', out, '--json');
    expect(f7.stderr).not.toMatch(/error/);
    expect(f7.code).toBe(0);
    const s = lastJson(f7);
    expect(s.rows.map((r: { label: string }) => r.label)).toEqual([
      ...[1, 3, 5, 7, 9, 11, 13].map((n) => `DHTA t-MAP, n_t ${n}`),
      'MAP original',
    ]);
    // The paper's Fig. 7 prints no numbers: n_t 1 is Table 1's P2P, n_t 9 its DHTA, MAP original Table 5's.
    expect(s.rows.map((r: { paper: unknown }) => r.paper)).toEqual([
      [44.35],
      null,
      null,
      null,
      [62.68],
      null,
      null,
      [51.02],
    ]);
    const first = pairs(join(out, 'bits16-nT1'), 'dhta');
    expect(first).toHaveLength(4);
    for (const n of [3, 5, 7, 9, 11, 13]) {
      expect(pairs(join(out, `bits16-nT${n}`), 'dhta')).toEqual(first);
      expect(pairs(join(out, `bits16-nT${n}`), 'original')).toEqual(first);
    }
    // The figure itself, PNG and SVG, referenced by the summary.
    expect(s.figures).toEqual(['figures/fig7.png']);
    expect(
      readFileSync(join(out, 'figures', 'fig7.png'))
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');
    const svg = readFileSync(join(out, 'figures', 'fig7.svg'), 'utf8');
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('16 bits');
    expect(svg).toContain('Original MAP');
    expect(readFileSync(join(out, 'fig7.md'), 'utf8')).toMatch(
      /!\[t-MAP of DHTA[^\]]*\]\(figures\/fig7\.png\)/,
    );
  });

  it('fig3: precision-recall and precision@N figures (PNG and SVG) beside the summary', () => {
    const out = join(root, 'f3');
    const r = dhta('reproduce', 'fig3', ...common(), '--bits', '16', '--out-dir', out, '--json');
    expect(r.stderr).not.toMatch(/error/);
    const s = lastJson(r);
    expect(s.figures).toEqual([
      'figures/fig3-16bits-precision-recall.png',
      'figures/fig3-16bits-precision-at-n.png',
    ]);
    const md = readFileSync(join(out, 'fig3.md'), 'utf8');
    for (const f of ['precision-recall', 'precision-at-n']) {
      expect(
        readFileSync(join(out, 'figures', `fig3-16bits-${f}.png`))
          .subarray(1, 4)
          .toString(),
      ).toBe('PNG');
      expect(readFileSync(join(out, 'figures', `fig3-16bits-${f}.svg`), 'utf8')).toContain(
        'DHTA (target label)',
      );
      expect(md).toContain(`](figures/fig3-16bits-${f}.png)`);
      expect(md).toContain(`[SVG](figures/fig3-16bits-${f}.svg)`);
    }
    // t-MAP rows beside Table 1's ImageNet and NUS-WIDE columns
    expect(s.rows[2]).toMatchObject({ key: 't-MAP dhta', paper: [62.68], papers: [[62.68], [82.85]] });
  });

  it("curve figures: Original scored against the query's own label when curves.json says so", async () => {
    const dir = join(root, 'curves');
    mkdirSync(dir, { recursive: true });
    const c = (p: number) => ({
      radii: [0, 1, 2],
      precision: [p, p, 0.1],
      recall: [0.1, 0.5, 1],
      ns: [1, 2],
      precisionAtN: [p, p],
    });
    const write = (reference: unknown) =>
      writeFileSync(
        join(dir, 'curves.json'),
        JSON.stringify({ reference, curves: { original: c(0.9), p2p: c(0.4), dhta: c(0.6) } }),
      );
    write("target labels; Original: the query's own label");
    const figs = await writeCurveFigures(dir, dir, 'own', '48 bits');
    expect(figs.map((f) => f.png)).toEqual([
      'figures/own-precision-recall.png',
      'figures/own-precision-at-n.png',
    ]);
    const svg = readFileSync(join(dir, 'figures', 'own-precision-recall.svg'), 'utf8');
    expect(svg).toMatch(/Original: query(&#39;|&apos;|')s own label; P2P\/DHTA: target label/);
    expect(figs[0].caption).toContain("Original: query's own label; P2P/DHTA: target label");
    expect(svg).toMatch(/Original \(query(&#39;|&apos;|')s own label\)/);
    // An older curves.json (every method on the target label) is not mislabelled.
    write('target labels');
    const old = await writeCurveFigures(dir, dir, 'old', '48 bits');
    expect(old[0].caption).toMatch(/all methods: target label/);
    expect(readFileSync(join(dir, 'figures', 'old-precision-recall.svg'), 'utf8')).toContain(
      'Original (target label)',
    );
    expect(originalScoredOnOwnLabel({ original: "query's own label", dhta: 'target label' })).toBe(true);
    expect(originalScoredOnOwnLabel(undefined)).toBe(false);
  });

  it('table3 and table4 sweep the iteration count: --iters scales the sweep, or is refused', () => {
    const args = common().filter((_, i) => i < 6); // without --iters
    const bad = dhta('reproduce', 'table3', ...args, '--iters', '3', '--bits', '16');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/table3 sweeps the iteration count itself \(100, 500, 1000, 1500, 2000\)/);
    expect(bad.stderr).toMatch(/give --iters 6 or more/);
    const out = join(root, 't3');
    const r = dhta(
      'reproduce',
      'table3',
      ...args,
      '--iters',
      '6',
      '--bits',
      '16',
      '--out-dir',
      out,
      '--json',
    );
    expect(r.stderr).not.toMatch(/error/);
    const s = lastJson(r);
    expect(s.sweep).toEqual({
      param: 'iterations',
      values: [1, 2, 3, 5, 6],
      paper: [100, 500, 1000, 1500, 2000],
    });
    expect(s.rows.map((x: { label: string }) => x.label)).toEqual([
      'DHTA t-MAP, iterations 1 (paper: 100)',
      'DHTA t-MAP, iterations 2 (paper: 500)',
      'DHTA t-MAP, iterations 3 (paper: 1000)',
      'DHTA t-MAP, iterations 5 (paper: 1500)',
      'DHTA t-MAP, iterations 6 (paper: 2000)',
      'MAP original',
    ]);
    expect(s.rows.map((x: { paper: unknown }) => x.paper)).toEqual([
      [52.99],
      [55.18],
      [56.96],
      [62.81],
      [63.68],
      [51.02],
    ]);
    const dhtaLines = readFileSync(join(out, 'bits16-iterations5', 'results.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l))
      .filter((l) => l.method === 'dhta');
    expect(dhtaLines.map((l) => l.iterations)).toEqual([5, 5]);
  });

  it("video data: the paper's code lengths by default (48 for fig5), and the paper's video figures", () => {
    const r = dhta('reproduce', 'fig7', '--data', 'moving-mnist', '--model', join(root, 'nope-{bits}'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no 16-bit model at .*nope-16/);
    const f5 = dhta('reproduce', 'fig5', '--data', 'moving-mnist', '--model', join(root, 'nope-{bits}'));
    expect(f5.stderr).toMatch(/no 48-bit model at .*nope-48/);
    // The zoo holds a video model at each of the paper's code lengths.
    for (const bits of [16, 32, 48, 64]) {
      expect(existsSync(join(zooRoot, `moving-mnist-${bits}`, 'model.json')), `moving-mnist-${bits}`).toBe(
        true,
      );
    }
    // table5 on video data is set beside JHMDB's column, not ImageNet's
    expect(paperColumnsFor('table5', 'video').map((c) => c.source)).toEqual([
      'JHMDB, AlexNet features + LSTM',
    ]);
    expect(paperColumnsFor('table5', 'video')[0].rows['MAP hag'][64]).toBe(3.34);
    const t2 = paperColumnsFor('table2', 'video');
    expect(t2.map((c) => c.source)).toEqual([
      'JHMDB, AlexNet features + LSTM',
      'UCF-101, AlexNet features + LSTM',
    ]);
    expect(t2[0].rows['t-MAP original']).toEqual({ 16: 6.73, 32: 6.26, 48: 6.48, 64: 6.89 });
    expect(t2[0].rows['t-MAP noise'][48]).toBe(6.5);
    expect(t2[0].rows['MAP original'][32]).toBe(42.46);
    expect(t2[1].rows['t-MAP dhta'][48]).toBe(69.72);
    expect(paperColumnsFor('table4', 'video')[0].rows['iterations 10'][16]).toBe(28.51);
    expect(paperColumnsFor('fig7', 'video')[0].rows['n_t 9'][64]).toBe(66.06);
    expect(paperColumnsFor('table6', 'video')).toEqual([]);
  });

  it("holds every number of the paper's Tables 1-6", () => {
    const count = Object.values(PAPER_TABLES)
      .flatMap((t) => t.blocks)
      .reduce((n, b) => n + Object.values(b.rows).reduce((m, r) => m + Object.keys(r).length, 0), 0);
    // Table 1: 2 data sets x 4 rows; 2: 2 x 5; 3: 5; 4: 4; 5: 2 x 5; 6: 4; each at 4 code lengths
    expect(count).toBe(4 * (8 + 10 + 5 + 4 + 10 + 4));
    expect(PAPER_TABLES.table3.blocks[0].rows['iterations 2000']).toEqual({
      16: 63.68,
      32: 77.76,
      48: 82.31,
      64: 82.1,
    });
    expect(PAPER_TABLES.table5.blocks[0].rows['MAP dhta']).toEqual({ 16: 0.54, 32: 5.64, 48: 2.3, 64: 1.7 });
    expect(PAPER_TABLES.table6.blocks[0].rows['n_t 11']).toEqual({ 16: 38, 32: 54.05, 48: 56.93, 64: 54.12 });
    expect(PAPER_TABLES.table1.blocks[1].rows['t-MAP noise'][32]).toBe(36.15);
  });
});
