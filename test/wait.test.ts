// src/gpu/wait.ts: waiting for a software adapter lets the host thread sleep between event-loop turns instead of
// spinning through dawn.node's setImmediate ticks, and changes nothing else (results, errors, GPU adapters).
import { afterEach, describe, expect, it } from 'vitest';
import { createGpu } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { compileGraph } from '../src/graph/executor.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { MAX_SLEEP_MS, pendingWaits, settle } from '../src/gpu/wait.js';
import { testGpu, testSoftwareDriver } from './gpu.js';

/**
 * Counts event-loop turns as dawn.node does its device ticks (a setImmediate queued again from each one) until
 * `p` settles: the busy polling that settle() is there to slow down.
 */
async function turnsUntil(p: Promise<unknown>): Promise<number> {
  let done = false;
  let turns = 0;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise<void>((resolve) => {
    const tick = () => {
      if (done) return resolve();
      turns++;
      setImmediate(tick);
    };
    setImmediate(tick);
  });
  return turns;
}

const after = (ms: number) => new Promise<string>((resolve) => setTimeout(() => resolve('ok'), ms));

afterEach(() => expect(pendingWaits()).toBe(0));

describe('settle: the host thread sleeps while a software adapter works', () => {
  it('off (a GPU, a browser): the promise itself, and nothing driven', async () => {
    const p = after(20);
    expect(settle({ sleepWhileWaiting: false }, p)).toBe(p);
    expect(settle({}, p)).toBe(p);
    expect(pendingWaits()).toBe(0);
    expect(await p).toBe('ok');
  });

  it('on: the loop turns at most about once a millisecond, the thread mostly asleep, and the wait ends when the promise does', async () => {
    // Without the sleeps a 60 ms wait turns the loop thousands of times on an idle core (the spinning measured in
    // docs/performance.md). The bounds below hold however loaded the machine is: sleeps only make turns fewer.
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const p = settle({ sleepWhileWaiting: true }, after(60));
    const turns = await turnsUntil(p);
    const c = process.cpuUsage(c0);
    const ms = performance.now() - t0;
    expect(await p).toBe('ok');
    expect(turns).toBeGreaterThanOrEqual(1);
    expect(turns).toBeLessThan(60 / MAX_SLEEP_MS + 40); // sleeps of 0.05, 0.1, ... then MAX_SLEEP_MS
    expect((c.user + c.system) / 1000).toBeLessThan(0.5 * ms);
    expect(ms).toBeGreaterThanOrEqual(59);
    expect(ms).toBeLessThan(5000);
    expect(pendingWaits()).toBe(0);
  });

  it('a rejection passes through unchanged; several waits share one loop of sleeps', async () => {
    const boom = new Error('map failed');
    const bad = settle({ sleepWhileWaiting: true }, after(10).then(() => Promise.reject(boom)));
    const good = settle({ sleepWhileWaiting: true }, after(30));
    expect(pendingWaits()).toBe(2);
    await expect(bad).rejects.toBe(boom);
    expect(await good).toBe('ok');
    await new Promise((r) => setImmediate(r));
    expect(pendingWaits()).toBe(0);
  });

  it('a wait that never settles stops sleeping at its bound (the caller`s timeout decides)', async () => {
    settle({ sleepWhileWaiting: true }, new Promise<never>(() => {}), 20);
    expect(pendingWaits()).toBe(1);
    await after(60);
    expect(pendingWaits()).toBe(0);
  });
});

describe('settle on the software adapter', () => {
  it('createGpu turns it on for a software adapter in Node unless asked not to; the outputs are the same', async () => {
    const { gpu, cache } = await testGpu();
    const software = testSoftwareDriver();
    expect(gpu.sleepWhileWaiting).toBe(gpu.isSoftware);
    if (!software) return; // the hardware adapter: off, checked above
    const spinning = await createGpu({ forceSoftware: software, sleepWhileWaiting: false });
    try {
      expect(spinning.sleepWhileWaiting).toBe(false);
      const g = new GraphBuilder();
      const x = g.input('x', [2, 3, 17, 19]);
      const c = g.op1('conv2d', [x, g.weight('w', [5, 3, 3, 3])], { kernel: [3, 3], stride: [1, 1], pad: [1, 1], act: 'silu', hasBias: false, hasResidual: false, hasInScale: false }, 'conv');
      g.output('y', g.op1('global_pool', [c], { mode: 'avg' }, 'pool'));
      const graph = g.finish();
      for (const t of graph.tensors) if (t.kind === 'weight') graph.weightData.set(t.id, new Float32Array(5 * 3 * 9).map((_, i) => Math.sin(i * 0.7)));
      const xs = new Float32Array(2 * 3 * 17 * 19).map((_, i) => Math.cos(i * 0.13));
      const outs: Float32Array[] = [];
      for (const [dev, pc] of [
        [gpu, cache],
        [spinning, new PipelineCache(spinning.device)],
      ] as const) {
        const cg = await compileGraph(dev, graph, { cache: pc });
        try {
          outs.push((await cg.run({ x: xs })).outputs.y!);
          outs.push((await cg.run({ x: xs })).outputs.y!);
        } finally {
          cg.destroy();
        }
      }
      expect(outs[0]!.every((v) => Number.isFinite(v))).toBe(true);
      for (const o of outs.slice(1)) expect(Array.from(o)).toEqual(Array.from(outs[0]!));
    } finally {
      spinning.destroy();
    }
  });
});
