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
