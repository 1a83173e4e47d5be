// Writing outputs safely: every file through a temporary name then a rename (and the temporary removed when
// the write fails), folders created with a message that says what is not writable, and one run at a time in
// an output folder (a lock file naming its holder).

import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { CliError } from './errors.js';

/** What an fs error means for the user, in a few words. */
export function fsReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied: not writable';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'ENOTDIR':
      return 'a part of the path is a file, not a folder';
    case 'EISDIR':
      return 'is a folder';
    case 'ENOENT':
      return 'no such file or folder';
    default:
      return err?.message ?? String(e);
  }
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

/** Creates a folder (and its parents); a clear error when it cannot. Returns whether it was created. */
export function makeDir(dir: string, what = 'the output folder'): boolean {
  const existed = existsSync(dir);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new CliError(`cannot create ${what} ${dir}: ${fsReason(e)}`, 'choose a folder you can write to');
  }
  return !existed;
}

/** Removes a folder this run created if the run failed before writing anything into it. */
export function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not empty, or already gone
  }
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
