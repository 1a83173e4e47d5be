// Progress on long work: a bar on a terminal (stderr), plain lines when stderr is not a terminal (logs, CI),
// at most one line every few seconds per phase. Nothing goes to stdout, which stays for tables and JSON.

import cliProgress from 'cli-progress';

export interface Progress {
  /** Updates the phase's bar (a new phase ends the previous bar). */
  update(phase: string, done: number, total: number, extra?: string): void;
  /** A line of its own (ends any bar first). */
  log(line: string): void;
  stop(): void;
}

export function createProgress(options: { quiet?: boolean; intervalMs?: number } = {}): Progress {
  const tty = Boolean(process.stderr.isTTY) && !process.env['CI'];
  const interval = options.intervalMs ?? 5000;
  let bar: cliProgress.SingleBar | null = null;
  let phase = '';
  let lastLine = 0;
  const started = new Map<string, number>();
  const endBar = (): void => {
    bar?.stop();
    bar = null;
  };
  return {
    update(name, done, total, extra = '') {
      if (options.quiet) return;
      if (!started.has(name)) started.set(name, performance.now());
      if (tty) {
        if (name !== phase || !bar) {
          endBar();
          phase = name;
          bar = new cliProgress.SingleBar(
            {
              format: `${name.padEnd(16)} [{bar}] {percentage}% | {value}/{total} | ETA {eta_formatted} | {extra}`,
              stream: process.stderr,
              hideCursor: true,
              etaBuffer: 50,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(total, done, { extra });
        } else {
          bar.setTotal(total);
          bar.update(done, { extra });
        }
        return;
      }
      const now = performance.now();
      if (name !== phase || done >= total || now - lastLine >= interval) {
        phase = name;
        lastLine = now;
        const secs = (now - (started.get(name) ?? now)) / 1000;
        const pct = total > 0 ? ((100 * done) / total).toFixed(0) : '100';
        process.stderr.write(`${name}: ${done}/${total} (${pct}%) ${secs.toFixed(0)} s ${extra}\n`);
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
