/**
 * Waiting for a software adapter without taking a core from it.
 *
 * dawn.node settles its promises (buffer maps, error scopes, queue completion) from device ticks that it queues
 * with setImmediate again and again for as long as any of them is pending: while the engine awaits a readback,
 * Node's main thread spins at full speed. On a GPU that only costs the host a core. On a software adapter (Mesa's
 * lavapipe, SwiftShader) the "GPU" is the same CPU: on the 2-core development machine `perf` showed the main thread
 * busy about 80 % of the time during the tiny pipeline's steady runs, lavapipe's two worker threads getting about
 * 0.9 of a core between them (docs/performance.md, "The host thread's wait").
 *
 * {@link settle} waits for such a promise while letting the event loop turn only now and then: between turns the
 * thread sleeps (Atomics.wait, no CPU), from 50 microseconds up to {@link MAX_SLEEP_MS}, doubling while the wait
 * lasts. A wait ends at most one sleep (at most 1 ms) after the adapter finished. The choice is per adapter:
 * `GpuContext.sleepWhileWaiting` (createGpu: on in Node on a software adapter, off on a GPU and in browsers, whose
 * WebGPU runs in another process), so GPU runs wait exactly as before.
 * @module
 */
import { blockThread, nextTurn } from '../host/node.js';

/** The longest sleep between two turns of the event loop while waiting (milliseconds). */
export const MAX_SLEEP_MS = 1;
/** The first sleep of a wait (milliseconds). */
const FIRST_SLEEP_MS = 0.05;

interface Waiter {
  done: boolean;
  deadline: number;
}

const waiters = new Set<Waiter>();
let driving = false;

/** How many waits {@link settle} is driving now (0 once every one has settled or passed its bound). For tests. */
export function pendingWaits(): number {
  return waiters.size;
}

/**
 * Returns `p`, after arranging that until it settles the event loop turns only between short sleeps of this
 * thread, when `gpu.sleepWhileWaiting` is on; otherwise `p` as it is. Several waits share one loop of sleeps.
 * @param boundMs stop sleeping for this wait after so long even if it has not settled (the caller's own timeout
 *   then decides; Infinity: until it settles).
 */
export function settle<T>(gpu: { readonly sleepWhileWaiting?: boolean }, p: Promise<T>, boundMs = Infinity): Promise<T> {
  if (!gpu.sleepWhileWaiting) return p;
  const w: Waiter = { done: false, deadline: performance.now() + boundMs };
  const mark = () => {
    w.done = true;
  };
  p.then(mark, mark);
  waiters.add(w);
  if (!driving) void drive();
  return p;
}

async function drive(): Promise<void> {
  driving = true;
  try {
    let sleep = FIRST_SLEEP_MS;
    for (;;) {
      const now = performance.now();
      for (const w of waiters) if (w.done || now > w.deadline) waiters.delete(w);
      if (!waiters.size) return;
      blockThread(sleep);
      sleep = Math.min(MAX_SLEEP_MS, sleep * 2);
      await nextTurn();
    }
  } finally {
    driving = false;
  }
}
