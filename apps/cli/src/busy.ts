// Competing busy processes for benchmarks (`--busy N`): each a child Node process that spins on one core,
// started before a measurement and killed after it, so that a benchmark can show how our threads behave
// when another program wants the same cores (the machines we run on are shared). Each runs in a session of
// its own: Linux's autogroup scheduling shares the CPUs between sessions first, so a child in ours would
// compete with our threads for our session's share instead of with us, as another program does.
import { type ChildProcess, spawn } from 'node:child_process';
import { CliError } from './errors.js';

/**
 * The child spins, and every ~2^24 iterations (a few ms) checks that its parent is still the one that
 * started it: a parent that dies without killing it (SIGKILL, a crash) reparents it, and it exits, so
 * no spinning orphan is ever left behind.
 */
const SPIN_SOURCE =
  'const p = process.ppid; for (let i = 1; ; i++) if ((i & 0xffffff) === 0 && process.ppid !== p) process.exit(0);';

export interface BusyProcesses {
  readonly count: number;
  /** Kills the processes and waits until they are gone (idempotent). */
  stop(): Promise<void>;
}

/** Starts `count` busy child processes (0: none) and resolves once all of them are running. */
export async function startBusy(count: number): Promise<BusyProcesses> {
  if (!Number.isInteger(count) || count < 0)
    throw new CliError(`--busy must be an integer >= 0, found ${count}`);
  // Only children that started are waited for: one that failed to start never emits 'exit'.
  const children: ChildProcess[] = [];
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  // A normal exit of ours (or process.exit from an error path) takes them along.
  process.once('exit', killAll);
  const stop = async (): Promise<void> => {
    const gone = children.map((c) =>
      c.exitCode !== null || c.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((ok) => c.once('exit', () => ok())),
    );
    killAll();
    await Promise.all(gone);
    process.off('exit', killAll);
  };
  try {
    for (let i = 0; i < count; i++) {
      const child = spawn(process.execPath, ['-e', SPIN_SOURCE], { stdio: 'ignore', detached: true });
      await new Promise<void>((ok, fail) => {
        child.once('spawn', () => {
          children.push(child);
          ok();
        });
        child.once('error', (err) =>
          fail(new CliError(`--busy: cannot start a busy process (${process.execPath}): ${err.message}`)),
        );
      });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { count, stop };
}
