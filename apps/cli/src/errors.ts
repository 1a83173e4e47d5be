/** Errors the CLI reports as one clear line (plus a hint) and a nonzero exit code, never a stack trace. */
export class CliError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'CliError';
    this.hint = hint;
  }
}

export function reportError(err: unknown): number {
  const e = err as { name?: string; message?: string; code?: string; hint?: string };
  const message = (e?.message ?? String(err)).split('\n')[0];
  const code = e?.code ? ` [${e.code}]` : '';
  process.stderr.write(`dhta: error${code}: ${message}\n`);
  if (e?.hint) process.stderr.write(`hint: ${e.hint}\n`);
  if (process.env['DHTA_DEBUG'] && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return 1;
}
