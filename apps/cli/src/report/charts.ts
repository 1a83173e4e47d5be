// Charts of a run as Vega-Lite specs, rendered to SVG on the server with vega's View.toSVG() (no canvas, no
// browser), and rasterised to PNG with sharp for report.md.

import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { MethodCurves, RunMethodMetrics } from './inputs.js';
import { methodName, PAPER_BITS, type PaperReference } from './paper.js';

/** One colour per method, the same in every chart. */
const METHOD_COLOURS: Record<string, string> = {
  Original: '#7f7f7f',
  Noise: '#bcbd22',
  P2P: '#1f77b4',
  DHTA: '#d62728',
  HAG: '#9467bd',
};

function colourScale(methods: string[], label: (method: string) => string = methodName) {
  const domain = methods.map(label);
  const palette = ['#2ca02c', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
  return {
    domain,
    range: methods.map((m, i) => METHOD_COLOURS[methodName(m)] ?? palette[i % palette.length]),
  };
}

/** Optional wording of a curves chart (the defaults are those of `dhta report`). */
export interface CurvesChartOptions {
  title?: string;
  subtitle?: string;
  /** The legend's name of a method (default: Original, Noise, P2P, DHTA, HAG). */
  methodLabel?: (method: string) => string;
}

const BASE = {
  width: 420,
  height: 300,
  background: 'white',
  config: { font: 'DejaVu Sans, Liberation Sans, Arial, sans-serif', view: { stroke: '#ccc' } },
};

export type VegaLiteSpec = Record<string, unknown>;

/** Precision against recall over Hamming radii 0..K, one line per method (radius order). */
export function precisionRecallSpec(
  curves: Record<string, MethodCurves>,
  reference: string,
  options: CurvesChartOptions = {},
): VegaLiteSpec {
  const label = options.methodLabel ?? methodName;
  const values: Array<Record<string, unknown>> = [];
  for (const [m, c] of Object.entries(curves))
    c.radii.forEach((r, i) => {
      if (c.precision[i] !== null && c.recall[i] !== null)
        values.push({ method: label(m), radius: r, precision: c.precision[i], recall: c.recall[i] });
    });
  return {
    ...BASE,
    title: {
      text: options.title ?? 'Precision-recall over Hamming radii',
      subtitle: options.subtitle ?? `relevant = shares the ${reference}`,
    },
    data: { values },
    mark: { type: 'line', point: { size: 18 }, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'recall', type: 'quantitative', scale: { domain: [0, 1] }, title: 'recall' },
      y: { field: 'precision', type: 'quantitative', scale: { domain: [0, 1] }, title: 'precision' },
      color: {
        field: 'method',
        type: 'nominal',
        scale: colourScale(Object.keys(curves), label),
        title: 'method',
        legend: { labelLimit: 400 },
      },
      order: { field: 'radius', type: 'quantitative' },
    },
  };
}

/** Precision of the top N against N, one line per method. */
export function precisionAtNSpec(
  curves: Record<string, MethodCurves>,
  reference: string,
  options: CurvesChartOptions = {},
): VegaLiteSpec {
  const label = options.methodLabel ?? methodName;
  const values: Array<Record<string, unknown>> = [];
  for (const [m, c] of Object.entries(curves))
    c.ns.forEach((n, i) => {
      if (c.precisionAtN[i] !== null) values.push({ method: label(m), n, precision: c.precisionAtN[i] });
    });
  return {
    ...BASE,
    title: {
      text: options.title ?? 'Precision@N',
      subtitle: options.subtitle ?? `relevant = shares the ${reference}`,
    },
    data: { values },
    mark: { type: 'line', point: { size: 18 }, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'n', type: 'quantitative', title: 'N (top results)' },
      y: { field: 'precision', type: 'quantitative', scale: { domain: [0, 1] }, title: 'precision@N' },
      color: {
        field: 'method',
        type: 'nominal',
        scale: colourScale(Object.keys(curves), label),
        title: 'method',
        legend: { labelLimit: 400 },
      },
    },
  };
}

/** t-MAP per method: this run beside the paper's figure at the same code length (when it has one). */
export function tMapSpec(
  metrics: RunMethodMetrics[],
  bits: number | undefined,
  paper: PaperReference,
): VegaLiteSpec {
  const runLabel = 'this run';
  const paperLabel = `the paper (${paper.source}${bits ? `, ${bits} bits` : ''})`;
  const values: Array<Record<string, unknown>> = [];
  for (const m of metrics) {
    if (m.tMap !== null) values.push({ method: methodName(m.method), source: runLabel, tMap: 100 * m.tMap });
    const p = bits === undefined ? undefined : paper.tMap[m.method]?.[bits];
    if (p !== undefined) values.push({ method: methodName(m.method), source: paperLabel, tMap: p });
  }
  return {
    ...BASE,
    height: 260,
    title: { text: 't-MAP per method', subtitle: 'the paper: another data set and model, for orientation' },
    data: { values },
    mark: { type: 'bar' },
    encoding: {
      x: {
        field: 'method',
        type: 'nominal',
        sort: metrics.map((m) => methodName(m.method)),
        title: null,
        axis: { labelAngle: 0 },
      },
      xOffset: { field: 'source', type: 'nominal', sort: [runLabel, paperLabel] },
      y: { field: 'tMap', type: 'quantitative', scale: { domain: [0, 100] }, title: 't-MAP %' },
      color: {
        field: 'source',
        type: 'nominal',
        sort: [runLabel, paperLabel],
        scale: { range: ['#d62728', '#bbbbbb'] },
        title: null,
        legend: { orient: 'bottom', direction: 'vertical', labelLimit: 400 },
      },
    },
  };
}

/** One point of the paper's Fig. 7: a value in percent at one n_t and code length. */
export interface NtPoint {
  nT: number;
  bits: number;
  /** DHTA's t-MAP, or the benign queries' MAP (Original). */
  series: 'DHTA t-MAP' | 'Original MAP';
  value: number;
}

/**
 * The paper's Fig. 7: DHTA's t-MAP against n_t, one solid line per code length, and the benign queries' MAP
 * (Original) as a dashed line of the same colour.
 */
export function ntSweepSpec(points: NtPoint[], subtitle: string): VegaLiteSpec {
  const nts = [...new Set(points.map((p) => p.nT))].sort((a, b) => a - b);
  const bitsOrder = [...new Set(points.map((p) => p.bits))].sort((a, b) => a - b).map((b) => `${b} bits`);
  return {
    ...BASE,
    title: {
      text: 't-MAP of DHTA and MAP of Original against n_t',
      subtitle: [subtitle, 'solid: DHTA t-MAP; dashed: Original MAP (benign queries, own labels)'],
    },
    data: { values: points.map((p) => ({ ...p, code: `${p.bits} bits` })) },
    mark: { type: 'line', point: { size: 30 }, strokeWidth: 1.8 },
    encoding: {
      x: { field: 'nT', type: 'quantitative', title: 'n_t', axis: { values: nts }, scale: { zero: false } },
      y: { field: 'value', type: 'quantitative', scale: { domain: [0, 100] }, title: '%' },
      color: { field: 'code', type: 'nominal', sort: bitsOrder, title: 'code length' },
      strokeDash: {
        field: 'series',
        type: 'nominal',
        sort: ['DHTA t-MAP', 'Original MAP'],
        scale: {
          domain: ['DHTA t-MAP', 'Original MAP'],
          range: [
            [1, 0],
            [5, 3],
          ],
        },
        title: null,
        legend: null, // said in the subtitle: a dash pattern in a legend symbol does not render
      },
    },
  };
}

/** True when the paper has a figure for this code length. */
export function paperHasBits(bits: number | undefined): boolean {
  return bits !== undefined && (PAPER_BITS as readonly number[]).includes(bits);
}

/** Renders a Vega-Lite spec to a standalone SVG string. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const compiled = vegaLite.compile(spec as unknown as vegaLite.TopLevelSpec).spec;
  // No loader: the data is inline, and nothing may be fetched.
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * Gives every id in an SVG (and every reference to one) a prefix, so that several SVGs inlined in one HTML
 * page do not share ids: vega numbers its clip paths from 1 in every chart.
 */
export function prefixSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}-$1"`);
}
