/**
 * Node only: writes an analysis's output files as one folder that appears whole or not at all. The files go
 * into a hidden temporary sibling (`.NAME.partial-PID-RANDOM`), which is renamed to NAME only once every file
 * is written and synced; an existing NAME that is a covidct output (it has report.json) is replaced, anything
 * else there is refused. A failure or SIGINT/SIGTERM while writing removes the temporary folder, so an
 * interrupted run never leaves a folder that looks complete (a SIGKILL can leave only the hidden '.partial').
 * @module
 */
import { existsSync, rmSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { OutputFile } from '../analysis/outputs.js';

/** Raised when the output folder cannot be used (exists with other content, not writable). */
export class OutputDirError extends Error {
  override name = 'OutputDirError';
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

/**
 * Checks that `dir` can be written (or replaced) before a long run starts: it is absent, an empty folder, or a
 * covidct output folder (has report.json); its parent is a folder (created when missing).
 */
export async function checkOutputDir(dir: string): Promise<void> {
  const abs = resolve(dir);
  try {
    const st = await stat(abs);
    if (!st.isDirectory()) throw new OutputDirError(dir, 'exists and is not a folder');
    const entries = await readdir(abs);
    if (entries.length && !entries.includes('report.json')) throw new OutputDirError(dir, 'exists and is not a covidct output folder (no report.json): not replaced');
  } catch (e) {
    if (e instanceof OutputDirError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new OutputDirError(dir, `cannot be used: ${(e as Error).message}`);
  }
  try {
    await mkdir(dirname(abs), { recursive: true });
  } catch (e) {
    throw new OutputDirError(dir, `its parent folder cannot be created: ${(e as Error).message}`);
  }
}

/** Options of {@link writeOutputDir}. */
export interface WriteOutputOptions {
  /** Called after each file is written (tests use it to fail mid-way). */
  afterFile?: (name: string, index: number) => void | Promise<void>;
}

/** Writes `files` as the folder `dir`, atomically as the module comment says. */
export async function writeOutputDir(dir: string, files: OutputFile[], opts: WriteOutputOptions = {}): Promise<void> {
  const abs = resolve(dir);
  await checkOutputDir(abs);
  for (const f of files) if (!isSafeName(f.name)) throw new OutputDirError(dir, `refusing output file name '${f.name}'`);
  const tmp = join(dirname(abs), `.${basename(abs)}.partial-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  const cleanup = () => {
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  };
  const onSignal = (sig: NodeJS.Signals) => {
    cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.kill(process.pid, sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await mkdir(tmp);
    let i = 0;
    for (const f of files) {
      const p = join(tmp, ...f.name.split('/'));
      await mkdir(dirname(p), { recursive: true });
      const fh = await open(p, 'w');
      try {
        await fh.writeFile(f.bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await opts.afterFile?.(f.name, i++);
    }
    if (existsSync(abs)) {
      const old = join(dirname(abs), `.${basename(abs)}.old-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
      await rename(abs, old);
      await rename(tmp, abs);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, abs);
    }
  } catch (e) {
    cleanup();
    throw e;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** A relative '/'-separated name with no '..', no empty or hidden parts. */
function isSafeName(name: string): boolean {
  const parts = name.split('/');
  return parts.length > 0 && parts.every((p) => p.length > 0 && p !== '.' && p !== '..' && !p.startsWith('.') && !p.includes('\\'));
}
