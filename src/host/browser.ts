/**
 * The browser builds' stand-in for ./node.ts (substituted by build.mjs and web/build.mjs): the same functions, each
 * refusing with a message that names what needs Node, so a browser bundle imports no Node module.
 * @module
 */

/** Which host module this is. */
export const HOST: 'node' | 'browser' = 'browser';

function nodeOnly(what: string): Error {
  return new Error(`${what} needs Node's file system, which a browser does not have: read the file's bytes (File.arrayBuffer()) and pass them to the function that takes bytes (parseSafetensors, openWeights, readNifti, scanDicomFiles)`);
}

/** Refuses: no file system in a browser. */
export function fsPromises(what: string): Promise<never> {
  return Promise.reject(nodeOnly(what));
}

/** Refuses: no file system in a browser. */
export function pathExists(_path: string): Promise<boolean> {
  return Promise.reject(nodeOnly('looking for a software Vulkan driver'));
}

/** Refuses: dawn.node is Node's WebGPU; a browser has navigator.gpu. */
export function importDawn(): Promise<unknown> {
  return Promise.reject(new Error("dawn.node (the npm package 'webgpu') is for Node; in a browser createGpu uses navigator.gpu"));
}

/** In a browser there is no process standard error: runs `fn` as it is. */
export async function captureNativeStderr<T>(fn: () => T): Promise<{ value: T; text: string }> {
  return { value: fn(), text: '' };
}

/** Refuses: a browser's main thread may not block (and its WebGPU runs in another process, so it never needs to). */
export function blockThread(_ms: number): void {
  throw new Error('blocking the thread is for Node (src/gpu/wait.ts uses it only with dawn.node on a software adapter)');
}

/** Resolves after the current task (a macrotask, as setImmediate in Node). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
