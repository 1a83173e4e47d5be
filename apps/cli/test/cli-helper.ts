// Running the bundled CLI in tests: one bundle build per test file, each run in its own process with its own
// cache folder (so database codes encoded by one test never leak into another).

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const CLI = join(here, '../dist/dhta.mjs');

export async function buildCli(): Promise<void> {
  const { bundle } = await import('../build.mjs');
  await bundle();
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function cliRunner(cacheDir: string, timeoutMs = 300_000): (...args: string[]) => CliRun {
  return (...args) => {
    const r = spawnSync(process.execPath, [CLI, ...args], {
      encoding: 'utf8',
      timeout: timeoutMs,
      env: { ...process.env, DHTA_CACHE: cacheDir },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
}

/** The last stdout line as JSON (the --json output). */
export function lastJson(r: CliRun) {
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '');
}
