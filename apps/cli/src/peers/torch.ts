// Runs a PyTorch peer script (bench/torch_*.py) and reads the one JSON line it prints last.
import { execFile } from 'node:child_process';
import { CliError } from '../errors.js';

/**
 * `python args...` with this machine's OPENBLAS_* variables unset (they slow OpenBLAS down); resolves to the
 * last line of its output parsed as JSON. `command` names the bench in messages ("bench attack").
 */
export function runTorchPeer<T>(command: string, python: string, args: string[]): Promise<T> {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('OPENBLAS_')) delete env[k];
  return new Promise((ok, fail) => {
    execFile(python, args, { env, maxBuffer: 1 << 22 }, (err, out, errText) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
        fail(
          new CliError(
            `${command} --peer torch: cannot run ${python}: no such program`,
            "install Debian's python3-torch (apt-get install python3-torch libopenblas0-pthread) or pass --python PATH",
          ),
        );
        return;
      }
      if (err) {
        fail(
          new CliError(
            `${command} --peer torch: expected ${python} ${args[0]} to run PyTorch, found: ${(errText || err.message).trim().split('\n').slice(-3).join(' | ')}`,
            "install Debian's python3-torch and libopenblas0-pthread (apt-get install python3-torch libopenblas0-pthread) or pass --python",
          ),
        );
        return;
      }
      try {
        ok(JSON.parse(out.trim().split('\n').at(-1) ?? '') as T);
      } catch {
        fail(
          new CliError(
            `${command} --peer torch: expected one JSON line from the peer, found: ${out.slice(0, 200)}`,
          ),
        );
      }
    });
  });
}
