/**
 * What the library needs from Node and nothing else: the file system (for the functions that read or write a
 * path: readSafetensorsFile, writeSafetensorsFile, readWeightsFile) and dawn.node (the npm package `webgpu`) with
 * the files its software drivers are found by. Every other module is platform-free.
 *
 * The browser builds (build.mjs for dist/covidct.browser.js, web/build.mjs for the page's worker) put
 * ./browser.ts in this module's place, so a browser bundle neither imports `node:fs` nor names `webgpu`: an app
 * that bundles covidct for the browser builds without shims. The functions are loaded lazily, where a path or
 * dawn.node is first needed, so importing the library costs nothing.
 * @module
 */

/** Which host module this is ('browser' in the browser builds). */
export const HOST: 'node' | 'browser' = 'node';

/** `node:fs/promises`. */
export function fsPromises(_what: string): Promise<typeof import('node:fs/promises')> {
  return import('node:fs/promises');
}

/** Whether a path exists (`node:fs` existsSync). */
export async function pathExists(path: string): Promise<boolean> {
  const fs = await import('node:fs');
  return fs.existsSync(path);
}

/** dawn.node: the npm package `webgpu` (an optional dependency: loaded only when a Node GPU is asked for). */
export async function importDawn(): Promise<unknown> {
  // A name in a variable: bundlers (esbuild, vite) leave the import to run time, where Node resolves the installed
  // package; it is never bundled.
  const name = 'webgpu';
  return import(/* @vite-ignore */ /* webpackIgnore: true */ name);
}

/**
 * Runs `fn` with the process's standard error (file descriptor 2) pointed at a temporary file, and returns what
 * native code wrote there meanwhile, then puts standard error back.
 *
 * Why: Dawn logs with fprintf(stderr) from C++ while it enumerates the Vulkan adapters (inside requestAdapter), and
 * on Mesa's lavapipe, which reports 1,000,000 dynamic buffers per pipeline layout, it always prints two lines
 * ("maxDynamic...BuffersPerPipelineLayout artificially reduced ..."). No toggle, limit or request option reaches
 * that log (it runs before any device or limit is asked for; docs/cli.md), so the CLI takes it from fd 2 for the
 * length of that one synchronous call, and shows it only with --debug. Nothing else is redirected, and JavaScript
 * does not run meanwhile (`fn` is synchronous), so none of our own output can be lost.
 *
 * Linux and macOS (it reopens fd 2 through /proc/self/fd or /dev/fd; Node has no dup2): a terminal, a pipe or a
 * file. Elsewhere, or when standard error cannot be reopened (closed, or a socket, as when a Node parent spawns the
 * command with stdio 'pipe', or systemd's journal), `fn` runs as it is and `text` is '': the driver's lines then
 * pass through.
 */
export async function captureNativeStderr<T>(fn: () => T): Promise<{ value: T; text: string }> {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const fdDir = process.platform === 'linux' ? '/proc/self/fd/' : process.platform === 'darwin' ? '/dev/fd/' : null;
  if (!fdDir) return { value: fn(), text: '' };
  let saved: number;
  try {
    saved = fs.openSync(`${fdDir}2`, 'a'); // the same terminal, pipe or file as fd 2, by another descriptor
  } catch {
    return { value: fn(), text: '' };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'covidct-driver-'));
  const file = path.join(dir, 'stderr.txt');
  // Opens `p` as descriptor 2, once fd 2 is closed: an open takes the lowest free descriptor (0 or 1 first when the
  // process runs with stdin or stdout closed: those are taken and given back).
  const openAsFd2 = (p: string): number => {
    const low: number[] = [];
    let fd = fs.openSync(p, 'a');
    while (fd < 2) {
      low.push(fd);
      fd = fs.openSync(p, 'a');
    }
    for (const l of low) fs.closeSync(l);
    return fd;
  };
  try {
    fs.writeFileSync(file, '', { mode: 0o600 });
    fs.closeSync(2);
    const redirected = openAsFd2(file);
    const restore = () => {
      fs.closeSync(redirected);
      const back = openAsFd2(`${fdDir}${saved}`);
      if (back !== 2) fs.closeSync(back);
    };
    // Another thread took descriptor 2 in between (not seen; nothing else of ours runs): put it back, run uncaptured.
    if (redirected !== 2) {
      restore();
      return { value: fn(), text: '' };
    }
    let value: T;
    try {
      value = fn();
    } finally {
      restore();
    }
    return { value, text: fs.readFileSync(file, 'utf8') };
  } finally {
    fs.closeSync(saved);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

let sleepCell: Int32Array | null = null;

/**
 * Blocks this thread for `ms` milliseconds (fractions allowed) without using the CPU (Atomics.wait on a cell
 * nobody notifies; Node allows it on the main thread). Used by src/gpu/wait.ts while a software adapter works.
 */
export function blockThread(ms: number): void {
  sleepCell ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** Resolves on the event loop's next turn, after the immediates queued so far (dawn.node's device ticks among them). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
