// Writing outputs safely: every file through a temporary name then a rename (and the temporary removed when
// the write fails), folders created with a message that says what is not writable, and one run at a time in
// an output folder (a lock file naming its holder).

import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { CliError, FS_WORDS, plainMessage } from './errors.js';

/** What an fs error means for the user, in a few words. */
export function fsReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'EACCES' || err?.code === 'EPERM') return 'permission denied: not writable';
  return (err?.code && FS_WORDS[err.code]) || plainMessage(err?.message ?? String(e));
}

/**
 * Why JSON.parse refused `text`, in words with a line and column (engines word and place it differently: this
 * says it the same way everywhere): empty, cut short, or the first character that is not JSON.
 */
export function jsonReason(e: unknown, text: string): string {
  if (text.trim() === '') return 'the file is empty';
  const message = (e as Error)?.message ?? '';
  const at = /position (\d+)/.exec(message);
  const pos = at ? Number(at[1]) : -1;
  if (/Unexpected end of JSON|Unterminated/.test(message) || pos >= text.trimEnd().length)
    return 'cut short: the text ends inside a JSON value';
  if (pos < 0) return 'not JSON text';
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  const ch = text[pos];
  const shown = /[\x20-\x7e]/.test(ch) ? `"${ch}"` : `byte 0x${ch.charCodeAt(0).toString(16)}`;
  return `unexpected ${shown} at line ${line}, column ${column}`;
}

/** Writes a file through a temporary name and a rename; nothing is left behind when the write fails. */
export function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
    throw new CliError(`cannot write ${path}: ${fsReason(e)}`);
  }
}

/** The state of a path: a folder, another kind of file, or nothing (also when a part of it is a file). */
function kindOf(path: string): 'folder' | 'file' | 'none' {
  try {
    return statSync(path).isDirectory() ? 'folder' : 'file';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'none';
    throw e;
  }
}

/** Folders makeDir created, per folder asked for: removeIfEmpty takes them away again, deepest first. */
const createdLevels = new Map<string, string[]>();

/**
 * Creates a folder (and its parents); a clear error when it cannot. Returns whether it was created. Level by
 * level, not mkdir's recursive mode: on some file systems (/proc) that loops forever; and on failure the
 * levels made so far are removed again.
 */
export function makeDir(dir: string, what = 'the output folder'): boolean {
  const abs = resolve(dir);
  const fail = (why: string): never => {
    throw new CliError(`cannot create ${what} ${dir}: ${why}`, 'choose a folder you can write to');
  };
  let kind: ReturnType<typeof kindOf>;
  try {
    kind = kindOf(abs);
  } catch (e) {
    return fail(fsReason(e));
  }
  if (kind === 'folder') return false;
  if (kind === 'file') fail('a file of that name is there (not a folder)');
  const missing: string[] = [abs];
  for (let p = dirname(abs); ; p = dirname(p)) {
    let k: ReturnType<typeof kindOf>;
    try {
      k = kindOf(p);
    } catch (e) {
      return fail(`${p}: ${fsReason(e)}`);
    }
    if (k === 'folder') break;
    if (k === 'file') fail(`a part of the path is a file, not a folder (${p})`);
    if (dirname(p) === p) break;
    missing.unshift(p);
  }
  const made: string[] = [];
  for (const level of missing) {
    try {
      mkdirSync(level);
      made.push(level);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && kindOf(level) === 'folder') continue; // made by another process meanwhile
      for (const m of made.reverse()) {
        try {
          rmdirSync(m);
        } catch {
          // something was put there meanwhile: leave it
        }
      }
      // ENOENT from mkdir when the parent exists: a file system that takes no new folders (/proc, /sys).
      fail(code === 'ENOENT' ? `${dirname(level)} takes no new folders` : fsReason(e));
    }
  }
  createdLevels.set(abs, made);
  return true;
}

/** Removes a folder this run created if the run failed before writing anything into it (and the parents makeDir made for it). */
export function removeIfEmpty(dir: string): void {
  const abs = resolve(dir);
  const levels = createdLevels.get(abs) ?? [abs];
  for (const level of [...levels].reverse()) {
    try {
      rmdirSync(level);
    } catch {
      return; // not empty, or already gone
    }
  }
  createdLevels.delete(abs);
}

/**
 * Readies the path of an output file written at the end of a long run (a benchmark's JSON), before the run:
 * refuses a folder there, and creates the file's folder now, so that a path that cannot be written fails in
 * seconds, not after the work. Returns a function that removes the folders it created while they are empty
 * (call it when the run fails).
 */
export function prepareOutFile(path: string, option: string): () => void {
  let kind: ReturnType<typeof kindOf>;
  try {
    kind = kindOf(resolve(path));
  } catch (e) {
    throw new CliError(`${option} ${path}: ${fsReason(e)}`);
  }
  if (kind === 'folder')
    throw new CliError(
      `${option} ${path}: is a folder; expected a file name`,
      `give a path like ${join(path, 'result.json')}`,
    );
  const dir = dirname(resolve(path));
  const created = makeDir(dir, `the folder of ${option}`);
  return () => {
    if (created) removeIfEmpty(dir);
  };
}

interface LockHolder {
  pid: number;
  host: string;
  started: string;
  command: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const LOCK_NAME = '.dhta.lock';
const held = new Set<string>();
let exitHook = false;

/**
 * Takes the output folder for this process: OUT/.dhta.lock (created exclusively) holds the pid, host and start
 * time. A second run into the same folder is refused with a line naming the holder; a lock whose process is
 * gone (same host, no such pid) is stale and taken over. Released by the returned function and at exit.
 */
export function lockOutDir(dir: string): () => void {
  const file = join(resolve(dir), LOCK_NAME);
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    command: process.argv.slice(2).join(' ').slice(0, 300),
  };
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new CliError(
          `cannot lock ${dir} (${file}): ${fsReason(e)}`,
          'choose a folder you can write to',
        );
      }
      let holder: Partial<LockHolder> = {};
      try {
        holder = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
      } catch {
        // torn or foreign lock file: judged stale below only if it names no live process
      }
      const sameHost = holder.host === me.host;
      const pid = Number(holder.pid);
      const stale = sameHost && (!Number.isInteger(pid) || pid <= 0 || !alive(pid));
      if (stale && attempt === 0) {
        try {
          unlinkSync(file);
        } catch {
          // another process took it over first: the next attempt sees its lock
        }
        continue;
      }
      throw new CliError(
        `${dir} is in use by another dhta run (pid ${holder.pid ?? '?'} on ${holder.host ?? '?'}, since ${holder.started ?? '?'})`,
        sameHost
          ? 'wait for it to finish, or choose another --out-dir'
          : `if that run is gone, remove ${file}`,
      );
    }
    writeSync(fd, `${JSON.stringify(me)}\n`);
    closeSync(fd);
    held.add(file);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const f of held) {
          try {
            unlinkSync(f);
          } catch {
            // already gone
          }
        }
      });
    }
    return () => {
      if (!held.delete(file)) return;
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    };
  }
  throw new CliError(`cannot lock ${dir}: its lock file keeps changing`, 'is another run starting there?');
}
