/**
 * Node only: writes an analysis's output files as one folder that appears whole or not at all. The files go
 * into a hidden temporary sibling (`.NAME.partial-PID-RANDOM`), which is renamed to NAME only once every file
 * is written and synced; an existing NAME is replaced only when it holds exactly a covidct output (our file
 * names and a report.json of our schema: {@link foreignContent}), checked before the run and again just before
 * the old folder is removed; anything else there is refused and left as it is. A failure or SIGINT/SIGTERM while writing removes the temporary folder, so an
 * interrupted run never leaves a folder that looks complete (a SIGKILL can leave only the hidden '.partial').
 * @module
 */
import { existsSync, rmSync } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isOutputFileName, OVERLAYS_FOLDER, REPORT_FILE, type OutputFile } from '../analysis/outputs.js';
import { REPORT_SCHEMA } from '../analysis/report.js';

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

/** The most bytes of a report.json read to tell whether a folder is a covidct output. */
const MAX_REPORT_BYTES = 64 * 1024 * 1024;

/** What stands in the way of replacing a folder: entries that are not ours, or a problem with its report.json. */
export interface ForeignContent {
  /** Entries that are not covidct output files (folders end in '/'), relative to the folder. */
  entries: string[];
  /** Why the folder is not a covidct output although every entry is one of our names (no or a foreign report.json). */
  problem: string | null;
}

/**
 * What in the existing folder `abs` is not a covidct output: every entry that is not one of the files an analysis
 * writes ({@link isOutputFileName}: report.json, lung_mask.nii.gz, infection.nii.gz, overlays/slice_KKK.png,
 * overlays/contact_sheet.png; links, hidden files and other folders count as foreign), and a report.json that is
 * missing (in a folder that is not empty) or not a covidct report (JSON with `schema` 'covidct-report', a
 * `schemaVersion` and `software.name` 'covidct'). Nothing (no entries, no problem): the folder may be replaced.
 */
export async function foreignContent(abs: string): Promise<ForeignContent> {
  const entries: string[] = [];
  const ours: string[] = [];
  let any = false;
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(abs, rel), { withFileTypes: true })) {
      any = true;
      const name = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory() && name === OVERLAYS_FOLDER) await walk(name);
      else if (e.isFile() && isOutputFileName(name)) ours.push(name);
      else entries.push(e.isDirectory() ? `${name}/` : name);
    }
  };
  await walk('');
  let problem: string | null = null;
  if (!entries.length && any) problem = ours.includes(REPORT_FILE) ? await notOurReport(join(abs, REPORT_FILE)) : `no ${REPORT_FILE}`;
  return { entries, problem };
}

/** Why the file is not a covidct report.json, or null when it is one. */
async function notOurReport(path: string): Promise<string | null> {
  try {
    const st = await stat(path);
    if (st.size > MAX_REPORT_BYTES) return `its ${REPORT_FILE} is ${st.size} bytes, not a covidct report`;
    const r = JSON.parse(await readFile(path, 'utf8')) as { schema?: unknown; schemaVersion?: unknown; software?: { name?: unknown } };
    if (r?.schema !== REPORT_SCHEMA || typeof r.schemaVersion !== 'string' || r.software?.name !== 'covidct') return `its ${REPORT_FILE} is not a covidct report`;
    return null;
  } catch (e) {
    return e instanceof SyntaxError ? `its ${REPORT_FILE} is not JSON` : `its ${REPORT_FILE} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
}

function refusal(dir: string, f: ForeignContent): OutputDirError | null {
  if (!f.entries.length && !f.problem) return null;
  const shown = f.entries.slice(0, 5).join(', ') + (f.entries.length > 5 ? ` and ${f.entries.length - 5} more` : '');
  return new OutputDirError(dir, `exists and is not a covidct output folder (${f.entries.length ? `it holds ${shown}` : f.problem}): not replaced`);
}

/**
 * Checks that `dir` can be written (or replaced) before a long run starts: it is absent, an empty folder, or a
 * folder holding exactly a covidct output ({@link foreignContent} finds nothing else); its parent is a folder
 * (created when missing). Anything else is refused with an {@link OutputDirError} naming what is in the way.
 */
export async function checkOutputDir(dir: string): Promise<void> {
  const abs = resolve(dir);
  try {
    const st = await lstat(abs);
    if (!st.isDirectory()) throw new OutputDirError(dir, st.isSymbolicLink() ? 'is a symbolic link: not replaced (give the folder it points to)' : 'exists and is not a folder');
    const refused = refusal(dir, await foreignContent(abs));
    if (refused) throw refused;
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
  for (const f of files) if (!isSafeName(f.name) || !isOutputFileName(f.name)) throw new OutputDirError(dir, `refusing output file name '${f.name}' (not one of covidct's output files)`);
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
      // Checked again where it now is, before anything is removed: whatever came into it during the run stays.
      const refused = refusal(dir, await foreignContent(old));
      if (refused) {
        await rename(old, abs);
        throw refused;
      }
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
