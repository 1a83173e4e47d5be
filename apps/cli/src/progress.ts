// Progress on long work: a bar on a terminal (stderr), plain lines when stderr is not a terminal (logs, CI),
// at most one line every few seconds per phase. Nothing goes to stdout, which stays for tables and JSON.
// Every line names its unit (a method's counts are query-iterations, an encoding's items, an epoch's batches)
// and the time elapsed since the work began: one clock for the whole command, so that it never runs backwards
// when a phase ends, a new one begins or a phase name comes back (reproduce runs the same methods per cell).

import cliProgress from 'cli-progress';

export interface Progress {
  /**
   * Updates the phase's bar (a new phase ends the previous bar). `unit` names what done/total count
   * (default: from the phase name, see unitOf).
   */
  update(phase: string, done: number, total: number, extra?: string, unit?: string): void;
  /** A line of its own (ends any bar first). */
  log(line: string): void;
  stop(): void;
}

/** Phases that count query-iterations: one attack iteration of one query (the methods of the protocol). */
const ATTACK_PHASES = new Set(['original', 'noise', 'p2p', 'dhta', 'hag']);

/** What a phase's done/total count, from its name. */
export function unitOf(phase: string): string {
  if (ATTACK_PHASES.has(phase)) return 'query-iterations';
  if (phase.startsWith('encode')) return 'items';
  if (phase.startsWith('epoch')) return 'batches';
  return '';
}

export function createProgress(
  options: { quiet?: boolean; intervalMs?: number; now?: () => number } = {},
): Progress {
  const tty = Boolean(process.stderr.isTTY) && !process.env['CI'];
  const interval = options.intervalMs ?? 5000;
  const now = options.now ?? (() => performance.now());
  const t0 = now();
  let bar: cliProgress.SingleBar | null = null;
  let phase = '';
  // The phase of the last update, which a log line between two updates of one phase does not end.
  let current = '';
  let phaseStarted = t0;
  let lastLine = Number.NEGATIVE_INFINITY;
  const endBar = (): void => {
    bar?.stop();
    bar = null;
  };
  const seconds = (from: number, to: number): string => ((to - from) / 1000).toFixed(0);
  return {
    update(name, done, total, extra = '', unit = unitOf(name)) {
      if (options.quiet) return;
      const t = now();
      if (name !== current) {
        current = name;
        phaseStarted = t;
      }
      const counted = unit ? ` ${unit}` : '';
      const elapsed = `elapsed ${seconds(t0, t)} s (this phase ${seconds(phaseStarted, t)} s)`;
      if (tty) {
        if (name !== phase || !bar) {
          endBar();
          phase = name;
          bar = new cliProgress.SingleBar(
            {
              format: `${name.padEnd(16)} [{bar}] {percentage}% | {value}/{total}${counted} | {elapsed} | ETA {eta_formatted} | {extra}`,
              stream: process.stderr,
              hideCursor: true,
              etaBuffer: 50,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(total, done, { extra, elapsed });
        } else {
          bar.setTotal(total);
          bar.update(done, { extra, elapsed });
        }
        return;
      }
      if (name !== phase || done >= total || t - lastLine >= interval) {
        phase = name;
        lastLine = t;
        const pct = total > 0 ? ((100 * done) / total).toFixed(0) : '100';
        process.stderr.write(
          `${name}: ${done}/${total}${counted} (${pct}%), ${elapsed}${extra ? `, ${extra}` : ''}\n`,
        );
      }
    },
    log(line) {
      if (options.quiet) return;
      endBar();
      phase = '';
      process.stderr.write(`${line}\n`);
    },
    stop() {
      endBar();
    },
  };
}
