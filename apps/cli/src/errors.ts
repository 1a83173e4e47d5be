/** Errors the CLI reports as one clear line (plus a hint) and a nonzero exit code, never a stack trace. */
export class CliError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'CliError';
    this.hint = hint;
  }
}

/** Node's fs error codes in words (the same words as files.ts's fsReason, which builds on this). */
export const FS_WORDS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder, not a file',
  ENOENT: 'no such file or folder',
  EEXIST: 'something of that name is there already',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symbolic links (a link loop?)',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files',
  EBUSY: 'the file or folder is busy',
  ENOTEMPTY: 'the folder is not empty',
  EXDEV: 'cannot move across file systems',
  EIO: 'input/output error of the device',
  EFBIG: 'the file is too large for the file system',
};

/** What each file system call was doing, for a message that starts with it. */
const SYSCALL_VERBS: Record<string, string> = {
  open: 'cannot open',
  read: 'cannot read',
  write: 'cannot write',
  mkdir: 'cannot create the folder',
  rmdir: 'cannot remove the folder',
  unlink: 'cannot remove',
  rename: 'cannot move',
  stat: 'cannot open',
  lstat: 'cannot open',
  scandir: 'cannot list the folder',
  opendir: 'cannot list the folder',
  copyfile: 'cannot copy',
  access: 'cannot open',
};

/**
 * The safety net under every message the CLI prints: the words of a JavaScript engine or of Node that reach
 * it from deep inside (an fs error's "ENOENT: no such file or directory, open 'x'", JSON.parse's "Unexpected
 * end of JSON input", a child process's "spawn x ENOENT", an allocation's "Invalid typed array length")
 * said in the CLI's words, keeping the path. The messages built for people pass through unchanged.
 */
export function plainMessage(message: string): string {
  return (
    message
      // fs errors with their path(s): "ENOENT: no such file or directory, open '/x'"
      .replace(
        /\b(E[A-Z]{2,}): [^,()]*, (\w+) '([^']*)'(?: -> '([^']*)')?/g,
        (all, code: string, syscall: string, path: string, to: string | undefined) => {
          const words = FS_WORDS[code];
          if (!words) return all;
          const verb = SYSCALL_VERBS[syscall] ?? 'cannot use';
          return to ? `${verb} ${path} to ${to}: ${words}` : `${verb} ${path}: ${words}`;
        },
      )
      // ... and without one: "EISDIR: illegal operation on a directory, read"
      .replace(/\b(E[A-Z]{2,}): [^,()]*, (\w+)\b/g, (all, code: string) => FS_WORDS[code] ?? all)
      .replace(/\bspawn (\S+) (E[A-Z]{2,})\b/g, (_all, program: string, code: string) =>
        code === 'ENOENT'
          ? `cannot run ${program}: no such program`
          : `cannot run ${program}: ${FS_WORDS[code] ?? code}`,
      )
      // JSON.parse, in the wordings of Node 20 to 24
      .replace(/Unexpected end of JSON input/g, 'cut short: the text ends inside a JSON value')
      .replace(
        /Unexpected token '?(.)'?, "[^"]*"(?:\.\.\.)? is not valid JSON/g,
        'unexpected "$1": not JSON text',
      )
      .replace(/Unexpected token/g, 'unexpected character')
      .replace(
        / in JSON at position (\d+)(?: \(line (\d+) column (\d+)\))?/g,
        (_all, pos: string, line?: string, col?: string) =>
          line ? ` at line ${line}, column ${col}` : ` at character ${Number(pos) + 1}`,
      )
      // allocations past what a process can hold
      .replace(
        /(?:Invalid typed array length|Invalid array length|Array buffer allocation failed)(?:: (\d+))?/g,
        (_all, n?: string) => `too large to hold in memory${n ? ` (${n} elements)` : ''}`,
      )
  );
}

export function reportError(err: unknown): number {
  const e = err as {
    name?: string;
    message?: string;
    code?: unknown;
    hint?: string;
    syscall?: string;
    path?: string;
  };
  const raw = (e?.message ?? String(err)).split('\n')[0];
  // A Node fs error that no caller put into words: its code is not one of ours, so it is not shown as a tag.
  const fsCode = typeof e?.code === 'string' && e.code in FS_WORDS && typeof e.syscall === 'string';
  const message = plainMessage(raw);
  const code =
    e?.code && !fsCode && typeof e.code === 'string' && !/^ERR_/.test(e.code) ? ` [${e.code}]` : '';
  process.stderr.write(`dhta: error${code}: ${message}\n`);
  if (e?.hint) process.stderr.write(`hint: ${plainMessage(String(e.hint).split('\n')[0])}\n`);
  if (process.env['DHTA_DEBUG'] && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return 1;
}
