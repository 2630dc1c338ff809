/**
 * Child processes for the tests of the built artefacts, run asynchronously: a long synchronous spawn blocks the
 * vitest worker, whose calls to the main process then time out ("Timeout calling onTaskUpdate") and end the run.
 * stdout and stderr go to files, as with `cmd > out 2> err` (a 'pipe' would be a socket, from which the CLI cannot
 * take the GPU driver's lines: src/host/node.ts captureNativeStderr), and are returned as text.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Runs `cmd args` to its end (killed after `timeoutMs`); never rejects for a non-zero exit. */
export async function runChild(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ChildResult> {
  const dir = mkdtempSync(join(tmpdir(), 'covidct-child-'));
  const [outPath, errPath] = [join(dir, 'out'), join(dir, 'err')];
  const [outFd, errFd] = [openSync(outPath, 'w'), openSync(errPath, 'w')];
  try {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', outFd, errFd] });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, s) => resolve([c, s]));
    }).finally(() => clearTimeout(timer));
    return { code, signal, out: readFileSync(outPath, 'utf8'), err: readFileSync(errPath, 'utf8') };
  } finally {
    closeSync(outFd);
    closeSync(errFd);
    rmSync(dir, { recursive: true, force: true });
  }
}
