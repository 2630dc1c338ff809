/**
 * Node only: the weights a command uses when none are named, and where they are.
 *
 * The default is the trained model the package carries. Its path, relative to the package's root, is written in ONE
 * place: `covidct.defaultWeights` in package.json (read here at run time, by build.mjs for the bundles, by
 * web/build.mjs for the page, and by the packed-package test, which also checks that `files` ships it). It is
 * resolved against the package (the folder of covidct's own package.json, found upwards from this module: the
 * repository in a checkout, node_modules/covidct where installed), never against the working directory, so
 * `covidct analyze scan/` works from any folder. `--weights random` asks for the seeded random weights of the tiny
 * config by name (the engine's own tests and the bench); any other `--weights` value is a file path as given.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The `--weights` value that asks for seeded random weights (untrained) instead of a file. */
export const RANDOM_WEIGHTS = 'random';

/** The package's root folder and what its package.json says. */
export interface PackageInfo {
  /** Absolute path of the folder holding covidct's package.json. */
  root: string;
  version: string;
  /** `covidct.defaultWeights`: the default weights' path relative to the root ('/' separated), or null when not set. */
  defaultWeights: string | null;
}

let cached: PackageInfo | undefined;

/**
 * Finds covidct's package.json upwards from `from` (default: this module's own folder, which is src/node in a
 * checkout, dist or dist/chunks in a build).
 * @throws Error when there is none (a copy of the bundle without its package).
 */
export function packageInfo(from?: string): PackageInfo {
  if (from === undefined && cached) return cached;
  const start = from ?? dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string; covidct?: { defaultWeights?: string } };
        if (pkg.name === 'covidct') {
          const info = { root: dir, version: pkg.version ?? '', defaultWeights: pkg.covidct?.defaultWeights ?? null };
          if (from === undefined) cached = info;
          return info;
        }
      } catch {
        // not JSON: another folder's file; keep looking upwards
      }
    }
    if (dirname(dir) === dir) throw new Error(`covidct's package.json was not found above ${start}: the default weights are found relative to it`);
  }
}

/** The default weights: the absolute path and the name every output shows (the path inside the package). */
export function defaultWeights(info: PackageInfo = packageInfo()): { path: string; name: string } {
  if (!info.defaultWeights) throw new Error(`${join(info.root, 'package.json')} names no default weights (covidct.defaultWeights)`);
  const path = join(info.root, ...info.defaultWeights.split('/'));
  return { path, name: `${relative(info.root, path).split('\\').join('/')} (covidct's default)` };
}
