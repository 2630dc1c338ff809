/**
 * Allocation tracking for the fuzz harness: while a case runs, the global typed-array and ArrayBuffer
 * constructors are replaced by proxies that add up the bytes each `new X(n)` / `X.from(...)` allocates (views
 * on an existing buffer allocate nothing and count nothing). The JPEG-LS and JPEG 2000 codecs are the JavaScript
 * builds of CharLS and OpenJPEG, whose heap is an ArrayBuffer: its growth is seen. What it does not see: `slice()`
 * (a copy of bytes already held, at most the input's size), Node's own buffers (the DecompressionStream's chunks),
 * JavaScript objects (JSON.parse's), and module code that captured a constructor before the proxies were
 * installed (the NIfTI reader's table of views, which never allocate).
 * @module
 */

const NAMES = ['ArrayBuffer', 'Uint8Array', 'Int8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array'] as const;

/** What one tracked run allocated. */
export interface Allocations {
  /** Bytes over all tracked allocations. */
  total: number;
  /** The largest single allocation, in bytes. */
  largest: number;
  /** Number of tracked allocations. */
  count: number;
}

function bytesOf(name: string, ctor: { BYTES_PER_ELEMENT?: number }, args: unknown[]): number {
  const a = args[0];
  if (name === 'ArrayBuffer') return typeof a === 'number' ? a : 0;
  const per = ctor.BYTES_PER_ELEMENT ?? 1;
  if (a === undefined) return 0;
  if (typeof a === 'number') return a * per;
  if (a instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && a instanceof SharedArrayBuffer)) return 0; // a view
  if (ArrayBuffer.isView(a)) return (a as unknown as { length: number }).length * per;
  if (Array.isArray(a)) return a.length * per;
  if (a && typeof a === 'object' && 'length' in a) return Number((a as { length: number }).length) * per || 0;
  return 0;
}

/**
 * Runs `fn` with the constructors tracked and returns its result with what it allocated. Not reentrant; the
 * originals are back in place when it returns or throws.
 */
export async function tracked<T>(fn: () => Promise<T>): Promise<{ result?: T; error?: unknown; alloc: Allocations }> {
  const g = globalThis as unknown as Record<string, unknown>;
  const originals = NAMES.map((n) => [n, g[n]] as const);
  const alloc: Allocations = { total: 0, largest: 0, count: 0 };
  for (const [name, ctor] of originals) {
    g[name] = new Proxy(ctor as object, {
      construct(target, args, newTarget) {
        const n = bytesOf(name, target as { BYTES_PER_ELEMENT?: number }, args);
        if (n > 0) {
          alloc.total += n;
          alloc.count++;
          if (n > alloc.largest) alloc.largest = n;
        }
        return Reflect.construct(target as new (...a: unknown[]) => object, args, newTarget as new (...a: unknown[]) => object);
      },
    });
  }
  try {
    const result = await fn();
    return { result, alloc };
  } catch (error) {
    return { error, alloc };
  } finally {
    for (const [name, ctor] of originals) g[name] = ctor;
  }
}
