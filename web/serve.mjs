// A small static file server for the built page (no dependencies): node web/serve.mjs [DIR] [--port N] [--host H]
// Serves DIR (default dist/web) on http://127.0.0.1:PORT/ (default 8080; 0 picks a free port) and prints the address.
// Only GET and HEAD; paths are resolved inside DIR (no '..' escapes); no caching headers beyond no-store, so a
// rebuilt page is picked up on reload. Any other static host serves the folder as well: every path in it is relative.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/**
 * The page's Content-Security-Policy (docs/web.md): the meta tag of web/index.html (the test holds them equal) plus
 * what only a header can say (frame-ancestors). Sent with every response: the worker (worker.js), which reads the
 * scan, is governed by its own response's policy, not by the page's meta tag.
 */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self' blob:; img-src 'self' data: blob:; style-src 'self'; style-src-attr 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Headers sent with every response (docs/web.md lists them for other hosts). */
export const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

/**
 * Serves a folder. Resolves with the server and its address once it listens.
 * @param {string} dir
 * @param {{ port?: number, host?: string }} [opts]
 */
export function serveDir(dir, opts = {}) {
  const root = resolve(dir);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: 'GET, HEAD' }).end();
      return;
    }
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400, SECURITY_HEADERS).end('bad path');
      return;
    }
    let file = normalize(join(root, path));
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403, SECURITY_HEADERS).end('forbidden');
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' }).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream', 'content-length': statSync(file).size, 'cache-control': 'no-store' });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', () => {
      const a = server.address();
      resolvePromise({ server, url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/` });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { port: { type: 'string' }, host: { type: 'string' } } });
  const dir = positionals[0] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'web');
  if (!existsSync(join(dir, 'index.html'))) {
    console.error(`${dir}: no index.html here; build the page first (node web/build.mjs)`);
    process.exit(2);
  }
  const { url } = await serveDir(dir, { port: values.port ? Number(values.port) : 8080, ...(values.host ? { host: values.host } : {}) });
  console.log(`covidct web page: ${url}  (serving ${resolve(dir)}; Ctrl+C to stop)`);
}
