// The esbuild plugin of the browser builds (build.mjs, web/build.mjs): src/host/node.ts, the only module that imports
// Node's file system or dawn.node, is replaced by src/host/browser.ts, so a browser bundle imports no Node module.
import { dirname, resolve } from 'node:path';

/** @type {import('esbuild').Plugin} */
export const browserHost = {
  name: 'covidct-browser-host',
  setup(build) {
    build.onResolve({ filter: /(^|\/)host\/node(\.js|\.ts)?$/ }, (args) => {
      const target = resolve(args.resolveDir, args.path);
      if (!/[\\/]src[\\/]host[\\/]node(\.js|\.ts)?$/.test(target)) return undefined;
      return { path: resolve(dirname(target), 'browser.ts') };
    });
  },
};
