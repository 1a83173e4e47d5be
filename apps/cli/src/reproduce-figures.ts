// The figures of `dhta reproduce` (the paper's Fig. 3, 5 and 7) drawn from the cells' outputs, as SVG and PNG
// beside the summary. Rendering goes the way `dhta report`'s charts go: a Vega-Lite spec (report/charts.ts),
// renderSvg, then svgToPng (report/images.ts).

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type NtPoint,
  ntSweepSpec,
  precisionAtNSpec,
  precisionRecallSpec,
  renderSvg,
  type VegaLiteSpec,
} from './report/charts.js';
import { svgToPng } from './report/images.js';
import type { MethodCurves } from './report/inputs.js';
import { methodName } from './report/paper.js';
import { writeAtomic } from './results.js';

/** One figure written: its files relative to the summary's folder, and its caption. */
export interface WrittenFigure {
  png: string;
  svg: string;
  caption: string;
}

/** The `reference` of a curves.json: one phrase for every method, or one per method. */
type CurvesReference = string | Record<string, string> | undefined;

/**
 * Whether a run's curves.json scores Original against the query's own label (the paper's Fig. 3 and 5) rather
 * than the target label: its `reference` says so, as a phrase naming the query's own label for Original (e.g.
 * "target labels; Original: the query's own label") or as a per-method object ({ original: "query's own label" }).
 */
export function originalScoredOnOwnLabel(reference: CurvesReference): boolean {
  const own = (s: unknown) => typeof s === 'string' && /\bown label/i.test(s);
  if (reference && typeof reference === 'object') return own(reference['original']);
  return own(reference);
}

async function writeFigure(
  outDir: string,
  name: string,
  spec: VegaLiteSpec,
  caption: string,
): Promise<WrittenFigure> {
  const dir = join(outDir, 'figures');
  mkdirSync(dir, { recursive: true });
  const svg = await renderSvg(spec);
  writeAtomic(join(dir, `${name}.svg`), svg);
  writeAtomic(join(dir, `${name}.png`), await svgToPng(svg));
  return { png: `figures/${name}.png`, svg: `figures/${name}.svg`, caption };
}

/**
 * Fig. 3 / Fig. 5: precision-recall and precision@N curves of one cell (its curves.json), Original scored
 * against the query's own label and P2P / DHTA against the target label, as the paper's captions say; the
 * legend says which label each curve is scored against.
 */
export async function writeCurveFigures(
  outDir: string,
  cellDir: string,
  prefix: string,
  what: string,
): Promise<WrittenFigure[]> {
  const path = join(cellDir, 'curves.json');
  if (!existsSync(path)) return [];
  const { reference, curves } = JSON.parse(readFileSync(path, 'utf8')) as {
    reference?: CurvesReference;
    curves: Record<string, MethodCurves>;
  };
  const own = originalScoredOnOwnLabel(reference);
  const scoredOn = (m: string) => (m === 'original' && own ? "query's own label" : 'target label');
  const methodLabel = (m: string) => `${methodName(m)} (${scoredOn(m)})`;
  const attacked = Object.keys(curves)
    .filter((m) => m !== 'original')
    .map(methodName)
    .join('/');
  const subtitle = own
    ? `Original: query's own label; ${attacked}: target label`
    : `all methods: target label (curves.json: "${typeof reference === 'string' ? reference : 'target labels'}"; ` +
      "the paper scores Original against the query's own label)";
  const figures: WrittenFigure[] = [];
  figures.push(
    await writeFigure(
      outDir,
      `${prefix}-precision-recall`,
      precisionRecallSpec(curves, '', {
        title: `Precision-recall over Hamming radii, ${what}`,
        subtitle,
        methodLabel,
      }),
      `Precision-recall over Hamming radii 0..K, ${what}. Relevant: ${subtitle}.`,
    ),
  );
  figures.push(
    await writeFigure(
      outDir,
      `${prefix}-precision-at-n`,
      precisionAtNSpec(curves, '', { title: `Precision@N, ${what}`, subtitle, methodLabel }),
      `Precision of the top N results, ${what}. Relevant: ${subtitle}.`,
    ),
  );
  return figures;
}

/** Fig. 7: DHTA's t-MAP against n_t per code length, with the benign queries' MAP (Original), in percent. */
export async function writeNtFigure(
  outDir: string,
  name: string,
  points: NtPoint[],
  what: string,
): Promise<WrittenFigure[]> {
  if (points.length === 0) return [];
  const caption =
    `t-MAP of DHTA (solid) and MAP of Original (dashed; the benign queries against their own labels) against ` +
    `n_t, one colour per code length, ${what}.`;
  return [await writeFigure(outDir, name, ntSweepSpec(points, what), caption)];
}
