/**
 * The page's worker: everything that touches a scan or the GPU runs here, off the main thread, so the page stays
 * responsive. It reads the files the page hands it (NIfTI, DICOM files or a folder), picks the series as the CLI
 * does, runs both stages and the report on WebGPU through the same analysis code as the CLI, and posts back the
 * report, the output files (made by the CLI's own makeOutputFiles) and the CT as NIfTI bytes for the viewer.
 * Each run has an AbortController: `cancel` aborts it between files and between GPU batches.
 * @module
 */
import type { FromWorker, InputFile, ToWorker } from './protocol.js';
import { describeProblem } from './problems.js';
import * as pipeline from './pipeline.js';

const post = (msg: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(msg, transfer);

let current: { id: number; abort: AbortController } | null = null;
/** Runs cancelled while still waiting in the queue: skipped when their turn comes. */
const cancelled = new Set<number>();
/** Runs one at a time: a new request waits for the previous one (which the page cancels first). */
let queue: Promise<void> = Promise.resolve();

/**
 * Runs one request. A cancel is answered at once ("cancelled"), even while the work cannot stop yet (compiling
 * the model, a GPU batch in flight): the work stops at its next check of the signal, and the next request waits
 * for it (one run at a time on the device). A compile that finishes after its run was cancelled stays cached.
 */
async function run(id: number, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
  if (cancelled.delete(id)) {
    post({ type: 'error', id, kind: 'cancelled', message: 'Cancelled.' });
    return;
  }
  const abort = new AbortController();
  current = { id, abort };
  let answered = false;
  const answer = (e: unknown) => {
    if (answered) return;
    answered = true;
    post({ type: 'error', id, ...describeProblem(e, abort.signal.aborted) });
  };
  abort.signal.addEventListener('abort', () => answer(abort.signal.reason), { once: true });
  try {
    await work(abort.signal);
  } catch (e) {
    answer(e);
  } finally {
    if (current?.id === id) current = null;
  }
}

async function resolveWeights(weights: InputFile | undefined): Promise<pipeline.WeightsChoice> {
  if (!weights) return { kind: 'bundled' };
  const f = weights.file as Blob & { lastModified?: number };
  return { kind: 'file', name: weights.path, bytes: new Uint8Array(await weights.file.arrayBuffer()), key: `${weights.path}:${f.size}:${f.lastModified ?? 0}` };
}

async function analyse(id: number, load: (signal: AbortSignal, progress: pipeline.Progress) => Promise<pipeline.Loaded>, weights: InputFile | undefined) {
  await run(id, async (signal) => {
    const t0 = performance.now();
    const progress = pipeline.progressReporter((stage, done, total, slicesPerSec) => post({ type: 'progress', id, stage, done, total, slicesPerSec }));
    const loaded = await load(signal, progress);
    signal.throwIfAborted();
    const out = await pipeline.analyse(loaded, await resolveWeights(weights), { signal, progress, onGpu: (g) => post({ type: 'gpu', ...g }) });
    // Cancelled while the last step ran: the page has been told, and shows nothing of this run.
    signal.throwIfAborted();
    const transfer = [out.ct.buffer, out.lung.buffer, ...out.files.map((f) => f.bytes.buffer)].filter((b, i, a) => a.indexOf(b) === i) as ArrayBuffer[];
    post({ type: 'result', id, report: out.report, ct: out.ct, lung: out.lung, files: out.files, input: loaded.description, seconds: (performance.now() - t0) / 1000 }, transfer);
  });
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  switch (msg.type) {
    case 'cancel':
      if (current?.id === msg.id) current.abort.abort(new DOMException('cancelled', 'AbortError'));
      else cancelled.add(msg.id);
      return;
    case 'probe':
      queue = queue.then(async () => {
        try {
          post({ type: 'gpu', ...(await pipeline.probeGpu()) });
        } catch (e) {
          post({ type: 'error', id: null, ...describeProblem(e, false) });
        }
      });
      return;
    case 'sample':
      queue = queue.then(() => analyse(msg.id, (signal, progress) => pipeline.loadSample(signal, progress), msg.weights));
      return;
    case 'analyze':
      queue = queue.then(() =>
        analyse(
          msg.id,
          (signal, progress) =>
            pipeline.loadFiles(msg.files, msg.series, signal, progress, (s) => post({ type: 'series', id: msg.id, ...s })),
          msg.weights,
        ),
      );
      return;
  }
};
