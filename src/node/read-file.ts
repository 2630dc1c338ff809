/**
 * Node only: reading files whole or in part, with errors that name the file. `fs.readFile` fails on a file over
 * 2 GiB with a RangeError that names no file, on a folder with an EISDIR that names no path, and returns a
 * Buffer (whose `slice()` is a view of a shared pool, src/io/bytes.ts). {@link readWholeFile} checks the size
 * first, reads into one plain Uint8Array of exactly the file's size (in 1 GiB pieces, up to the largest array
 * this Node holds) and turns every failure into the caller's error type with a one-line problem;
 * {@link readHead} reads only the first bytes.
 * @module
 */
import { constants as bufferConstants } from 'node:buffer';
import { lstat, open, readlink, stat, type FileHandle } from 'node:fs/promises';

/** The largest file read whole: the largest typed array this Node allocates (4 GiB on 64-bit Node 20). */
export const MAX_WHOLE_FILE_BYTES: number = bufferConstants.MAX_LENGTH;

const PIECE = 1 << 30;

/** Why a file could not be read: missing (or a broken link), too large, not a file, or an I/O failure. */
export type FileProblemKind = 'not-found' | 'too-large' | 'not-a-file' | 'io';

/** Makes the error to throw for `problem` (one line, without the path). */
export type FileProblem = (problem: string, kind: FileProblemKind) => Error;

/** `fail`, with the errors it made remembered, so a catch passes them on and turns only system errors into one. */
function tracked(fail: FileProblem): { fail: FileProblem; mine: (e: unknown) => boolean } {
  const made = new WeakSet<object>();
  return {
    fail: (problem, kind) => {
      const e = fail(problem, kind);
      made.add(e);
      return e;
    },
    mine: (e) => typeof e === 'object' && e !== null && made.has(e),
  };
}

/** Human-readable size: '3.2 GB', '1.3 MB'. */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} bytes`;
}

function fsKind(e: unknown): FileProblemKind {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' ? 'not-found' : code === 'EISDIR' ? 'not-a-file' : 'io';
}

/** One line for a failed stat/open/read of `path` (ENOENT on a link: the link is broken, named with its target). */
export async function describeFsError(path: string, e: unknown): Promise<string> {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') {
    try {
      if ((await lstat(path)).isSymbolicLink()) return `broken symbolic link (its target ${await readlink(path)} does not exist)`;
    } catch {
      /* not there at all */
    }
    return 'no such file or folder';
  }
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ELOOP') return 'symbolic link loop';
  if (code === 'EISDIR') return 'is a folder, not a file';
  return `cannot be read (${code ?? (e as Error)?.message ?? e})`;
}

/**
 * The whole file at `path` as a Uint8Array of its own (byteOffset 0, exactly the file's length). A folder, a
 * missing file, a broken link, a file larger than `maxBytes` (default {@link MAX_WHOLE_FILE_BYTES}) or one that
 * changes size while it is read throws `fail(problem)`; nothing is allocated for a file that is refused.
 * @param what what the file should be, for messages ('a weights file', 'a scan'): 'is a folder, not <what>'.
 */
export async function readWholeFile(path: string, failWith: FileProblem, opts: { maxBytes?: number; what?: string } = {}): Promise<Uint8Array> {
  const { fail, mine } = tracked(failWith);
  const max = opts.maxBytes ?? MAX_WHOLE_FILE_BYTES;
  let size: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw fail(`is a folder, not ${opts.what ?? 'a file'}`, 'not-a-file');
    if (!st.isFile()) throw fail('is not a regular file', 'not-a-file');
    size = st.size;
  } catch (e) {
    if (mine(e)) throw e;
    throw fail(await describeFsError(path, e), fsKind(e));
  }
  if (size > max) throw fail(`is ${formatBytes(size)} (${size} bytes), more than the ${formatBytes(max)} a file may have here`, 'too-large');
  return withFile(path, fail, mine, async (fh) => {
    const out = new Uint8Array(size);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await fh.read(out, at, Math.min(PIECE, size - at), at);
      if (bytesRead === 0) throw fail(`changed while being read (${at} of ${size} bytes there)`, 'io');
      at += bytesRead;
    }
    const extra = await fh.read(new Uint8Array(1), 0, 1, size);
    if (extra.bytesRead !== 0) throw fail(`changed while being read (grew beyond ${size} bytes)`, 'io');
    return out;
  });
}

/** Opens `path`, runs `body` on it and closes it; system errors become `fail(problem)`, ours pass as they are. */
async function withFile<T>(path: string, fail: FileProblem, mine: (e: unknown) => boolean, body: (fh: FileHandle) => Promise<T>): Promise<T> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    return await body(fh);
  } catch (e) {
    if (mine(e)) throw e;
    throw fail(await describeFsError(path, e), fsKind(e));
  } finally {
    await fh?.close();
  }
}

/**
 * The first `n` bytes of the file at `path` (fewer when it is shorter) as a Uint8Array of its own, and the
 * file's size. Failures throw `fail(problem)` as {@link readWholeFile}.
 */
export async function readHead(path: string, n: number, failWith: FileProblem): Promise<{ bytes: Uint8Array; size: number }> {
  const { fail, mine } = tracked(failWith);
  return withFile(path, fail, mine, async (fh) => {
    const size = (await fh.stat()).size;
    const out = new Uint8Array(Math.min(n, size));
    let at = 0;
    while (at < out.length) {
      const { bytesRead } = await fh.read(out, at, out.length - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return { bytes: at === out.length ? out : out.slice(0, at), size };
  });
}
