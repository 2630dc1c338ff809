/**
 * The bench's peers, run in the same bench invocation as the engine, each in its own process:
 *
 * - torch: PyTorch CPU (Debian's python3-torch at /usr/bin/python3), weights/peers/torch_bench.py, 2 threads.
 * - torch-cuda: the same script and modules on CUDA (a PyTorch with CUDA, e.g. `--python python3` on a GPU
 *   machine), cuDNN autotuning; each timed run includes the input copy to the GPU and the outputs' copy back, as
 *   the engine's runs do.
 * - ort: ONNX Runtime Web's WebGPU provider in Node on dawn.node (GPU.md's recipe): the reference stages are
 *   exported to ONNX by weights/peers/export_onnx.py (opset 17, dynamic batch, cached), then `node dist/bench.js
 *   --ort-child JOB` runs them (see {@link ortChild}): `globalThis.navigator = { gpu: create(flags) }`,
 *   `import('onnxruntime-web/webgpu')`, the model given as bytes, and `GPUQueue.writeBuffer` wrapped to copy
 *   views of a SharedArrayBuffer (dawn.node rejects them). The same adapter kind as the engine's (SwiftShader
 *   when the engine runs on it). Its pipeline is stage 1 -> CPU mask -> stage 2 (the engine runs both stages as
 *   one graph, the mask on the GPU).
 *
 * The PyTorch peers run in one or more modes ({@link TORCH_MODES}, `--torch-modes`): strict f32, TF32
 * channels-last, fp16 channels-last, bf16 channels-last; by default torch-cuda runs f32, tf32-cl and fp16-cl in the
 * same process (so every engine / PyTorch ratio comes from one run on one GPU) and torch runs f32. Each result
 * carries its mode, and the report labels and compares it per mode.
 *
 * A peer that cannot run says why (status 'unavailable' or 'failed' with the reason); no number is made up.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SWIFTSHADER_ICD } from '../src/gpu/device.js';
import { defaultPreprocessConfig } from '../src/models/config.js';
import { lungMask, maskedInput, normalise } from '../src/analysis/preprocess.js';
import { syntheticWindowed } from './inputs.js';

export type PeerName = 'torch' | 'torch-cuda' | 'ort';
export const PEERS: readonly PeerName[] = ['torch', 'torch-cuda', 'ort'];

/**
 * How the PyTorch peers run (weights/peers/torch_bench.py's MODES): 'f32' = f32, NCHW, TF32 off; 'tf32-cl' = f32
 * tensors in channels-last with TF32 on (CUDA only: refused on the CPU); 'fp16-cl' = `module.half()` in
 * channels-last, f32 input converted on the device, f32 outputs (no CPU kernels in Debian's torch 1.13);
 * 'bf16-cl' = the same in bfloat16.
 */
export type TorchMode = 'f32' | 'tf32-cl' | 'fp16-cl' | 'bf16-cl';
export const TORCH_MODES: readonly TorchMode[] = ['f32', 'tf32-cl', 'fp16-cl', 'bf16-cl'];

/** The modes each PyTorch peer runs when `--torch-modes` is not given. */
export const DEFAULT_TORCH_MODES: Readonly<Record<'torch' | 'torch-cuda', readonly TorchMode[]>> = {
  torch: ['f32'],
  'torch-cuda': ['f32', 'tf32-cl', 'fp16-cl'],
};

/** A comma-separated mode list ('f32,fp16-cl') as modes; throws naming the unknown ones and the known. */
export function parseTorchModes(text: string): TorchMode[] {
  const modes = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = modes.filter((m) => !(TORCH_MODES as readonly string[]).includes(m));
  if (bad.length) throw new Error(`--torch-modes: unknown ${bad.join(', ')} (${TORCH_MODES.join(', ')})`);
  if (!modes.length) throw new Error(`--torch-modes: no mode given (${TORCH_MODES.join(', ')})`);
  return [...new Set(modes)] as TorchMode[];
}

/** A peer result's name in the report: the peer, and for the PyTorch peers its mode ('torch-cuda fp16-cl'). */
export function peerLabel(p: { peer: string; mode?: string }): string {
  return p.mode ? `${p.peer} ${p.mode}` : p.peer;
}

/** The interpreter with Debian's torch 1.13. */
export const TORCH_PYTHON = '/usr/bin/python3';

/** One peer measurement, or why there is none. */
export interface PeerResult {
  peer: PeerName;
  /** The PyTorch peers' mode (absent for ort). */
  mode?: TorchMode;
  target: string;
  batch: number;
  height: number;
  width: number;
  status: 'ok' | 'failed' | 'unavailable';
  reason?: string;
  /** What ran it: 'cpu (2 threads)' for torch, the WebGPU adapter for ort. */
  device?: string;
  software?: boolean;
  version?: string;
  /** torch: the dtype the module computed in, read from its first floating output ('float16' in fp16-cl). */
  computeDtype?: string;
  /** torch: whether the first run's outputs were all finite (the pipeline's patient_logits left out). */
  outputsFinite?: boolean;
  /** torch: model construction + weights + the mode's conversion; ort: ONNX export (0 when cached) + session creation. */
  setupMs?: number;
  /** ort only: ONNX export part of setupMs (0 when the file was cached). */
  exportMs?: number;
  firstRunMs?: number;
  steady?: { runs: number; medianMs: number; minMs: number; maxMs: number; p25Ms: number; p75Ms: number; samplesMs: number[] };
  /** torch on the CPU: median CPU time of the peer process per steady run (user + system, every thread). */
  cpuSteadyMedianMs?: number;
}

/** What the peers are asked to run. */
export interface PeerJob {
  config: string;
  sizes: Array<[number, number]>;
  batches: number[];
  targets: string[];
  repeats: number;
  warmup: number;
  /** Run ONNX Runtime Web on SwiftShader (as the engine did). */
  software: boolean;
  dawnFlags: string[];
  timeoutS: number;
  cacheDir?: string;
  /** Python with torch and torchvision (default {@link TORCH_PYTHON}). */
  python?: string;
  /** Modes of the PyTorch peers (default {@link DEFAULT_TORCH_MODES} per peer). */
  torchModes?: readonly TorchMode[];
  /** PyTorch's CPU threads (torch.set_num_threads; default 2, the engine's lavapipe threads on the 2-core machine). */
  threads?: number;
  log: (line: string) => void;
}

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository root: bench/ (sources, tests) or dist/ (bundle) sits directly under it. */
export const ROOT = resolve(HERE, '..');
/** The peers' Python (Python lives in weights/ only). */
const PY_DIR = join(ROOT, 'weights', 'peers');

function statsOf(samples: number[]): NonNullable<PeerResult['steady']> {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => {
    const i = (s.length - 1) * p;
    const lo = Math.floor(i);
    const hi = Math.ceil(i);
    return s[lo]! + (s[hi]! - s[lo]!) * (i - lo);
  };
  return { runs: s.length, medianMs: q(0.5), minMs: s[0]!, maxMs: s[s.length - 1]!, p25Ms: q(0.25), p75Ms: q(0.75), samplesMs: samples };
}

interface ProcResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs a process, passing each stdout line that is a JSON object to `onJson` (other lines are skipped); kills it
 * (by its pid) after `timeoutS`.
 */
function runProcess(cmd: string, args: string[], opts: { timeoutS: number; env?: NodeJS.ProcessEnv; onJson?: (r: Record<string, unknown>) => void }): Promise<ProcResult> {
  const onLine = (line: string) => {
    if (!opts.onJson || !line.trim()) return;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      return;
    }
    if (r && typeof r === 'object') opts.onJson(r as Record<string, unknown>);
  };
  return new Promise((res) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let pending = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutS * 1000);
    child.stdout.on('data', (d: Buffer) => {
      const s = d.toString();
      stdout += s;
      pending += s;
      let i: number;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        onLine(line);
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20_000);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      res({ code: null, signal: null, stdout, stderr: `${stderr}${e.message}`, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      onLine(pending);
      res({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function tail(s: string, n = 600): string {
  const t = s.trim().split('\n').filter((l) => !/^\s*$/.test(l));
  return t.slice(-6).join(' | ').slice(-n);
}

function procFailure(p: ProcResult, timeoutS: number): string {
  if (p.timedOut) return `timed out after ${timeoutS} s`;
  return `exited with ${p.signal ? `signal ${p.signal}` : `code ${p.code}`}${p.stderr ? `: ${tail(p.stderr)}` : ''}`;
}

function cells(job: PeerJob, targets: string[]): Array<{ target: string; batch: number; height: number; width: number }> {
  const out = [];
  for (const [height, width] of job.sizes) for (const target of targets) for (const batch of job.batches) out.push({ target, batch, height, width });
  return out;
}

/** PyTorch peers: CPU ('torch', job.threads, default 2) or CUDA ('torch-cuda'), each cell in every mode of the job. */
async function runTorch(job: PeerJob, peer: 'torch' | 'torch-cuda'): Promise<PeerResult[]> {
  const py = job.python ?? TORCH_PYTHON;
  const cuda = peer === 'torch-cuda';
  const modes = job.torchModes ?? DEFAULT_TORCH_MODES[peer];
  const all = cells(job, job.targets).flatMap((c) => modes.map((mode) => ({ ...c, peer, mode })));
  const unavailable = (reason: string) => all.map((c) => ({ ...c, status: 'unavailable' as const, reason }));
  if (py.includes('/') && !existsSync(py)) return unavailable(`${py} not found (Debian's python3-torch is needed; --python names another interpreter)`);
  const probe = await runProcess(py, ['-c', 'import torch, torchvision; print(torch.__version__)'], { timeoutS: 120 });
  if (probe.code !== 0) return unavailable(`${py} cannot import torch/torchvision: ${tail(probe.stderr)}`);
  const threads = job.threads ?? 2;
  job.log(`peer ${peer}: PyTorch ${probe.stdout.trim()} ${cuda ? 'on CUDA' : `on the CPU, ${threads} thread${threads === 1 ? '' : 's'}`}, modes ${modes.join(', ')}`);
  const got = new Map<string, PeerResult>();
  let whole: string | undefined; // an error of the whole script (no CUDA), the reason for every cell
  const key = (c: { mode: string; target: string; batch: number; height: number; width: number }) => `${c.mode}|${c.target}|${c.batch}|${c.height}x${c.width}`;
  const p = await runProcess(
    py,
    [
      join(PY_DIR, 'torch_bench.py'),
      '--config', job.config,
      '--targets', job.targets.join(','),
      '--sizes', job.sizes.map(([h, w]) => `${h}x${w}`).join(','),
      '--batches', job.batches.join(','),
      '--repeats', String(job.repeats),
      '--warmup', String(job.warmup),
      '--threads', String(threads),
      '--device', cuda ? 'cuda' : 'cpu',
      '--modes', modes.join(','),
    ],
    {
      timeoutS: job.timeoutS,
      onJson: (r) => {
        if (r.target === undefined && r.error) {
          whole = String(r.error);
          job.log(`  ${peer}: ${whole}`);
          return;
        }
        const mode = String(r.mode) as TorchMode;
        if (!modes.includes(mode)) return;
        const c = { mode, target: String(r.target), batch: Number(r.batch), height: Number(r.height), width: Number(r.width) };
        const base = { peer, ...c, device: String(r.device), software: false, version: `torch ${String(r.torch)}` };
        let res: PeerResult;
        if (r.error) res = { ...base, status: 'failed', reason: String(r.error) };
        else {
          res = { ...base, status: 'ok', computeDtype: String(r.computeDtype), outputsFinite: r.outputsFinite === true, setupMs: Number(r.setupMs), firstRunMs: Number(r.firstRunMs), steady: statsOf(r.samplesMs as number[]) };
          if (Array.isArray(r.cpuSamplesMs) && r.cpuSamplesMs.length) res.cpuSteadyMedianMs = statsOf(r.cpuSamplesMs as number[]).medianMs;
          job.log(`  ${peerLabel(res)} ${c.target} ${c.height}x${c.width} batch ${c.batch}: first ${res.firstRunMs!.toFixed(0)} ms, median ${res.steady!.medianMs.toFixed(1)} ms (${res.computeDtype})`);
        }
        got.set(key(c), res);
      },
    },
  );
  if (whole && !got.size) return unavailable(whole);
  return all.map((c) => got.get(key(c)) ?? { ...c, status: 'failed', reason: `no result: torch_bench.py ${procFailure(p, job.timeoutS)}` });
}

/** The ONNX files a target needs (the pipeline uses both stages). */
function onnxStages(target: string): string[] {
  return target === 'pipeline' ? ['stage1', 'stage2'] : [target];
}

/** ONNX Runtime Web (WebGPU provider) peer. */
async function runOrt(job: PeerJob): Promise<PeerResult[]> {
  const py = job.python ?? TORCH_PYTHON;
  const all = cells(job, job.targets).map((c) => ({ ...c, peer: 'ort' as const }));
  const unavailable = (reason: string, list = all) => list.map((c) => ({ ...c, status: 'unavailable' as const, reason }));
  const self = fileURLToPath(import.meta.url);
  if (!self.endsWith('.js')) return unavailable('the ONNX Runtime Web peer runs from the bundle: npm run bench (node dist/bench.js)');
  let ortVersion: string;
  try {
    ortVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'onnxruntime-web', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return unavailable('onnxruntime-web is not installed (npm ci installs it: it is a devDependency)');
  }
  const cacheDir = job.cacheDir ?? join(ROOT, 'node_modules', '.cache', 'covidct-bench');
  mkdirSync(cacheDir, { recursive: true });
  const results: PeerResult[] = [];
  for (const [h, w] of job.sizes) {
    for (const target of job.targets) {
      const mine = all.filter((c) => c.target === target && c.height === h && c.width === w);
      // Export (cached per config, stage and size).
      const files: Record<string, string> = {};
      let exportMs = 0;
      let failed: string | null = null;
      for (const stage of onnxStages(target)) {
        const cfg = stage.startsWith('efficientnet_') ? 'torchvision' : job.config;
        const path = join(cacheDir, `${cfg}_${stage}_${h}x${w}_opset17.onnx`);
        if (!existsSync(path)) {
          job.log(`peer ort: exporting ${stage} (${cfg}) ${h}x${w} to ONNX ...`);
          const t0 = performance.now();
          const p = await runProcess(py, [join(PY_DIR, 'export_onnx.py'), '--config', job.config, '--stage', stage, '--size', `${h}x${w}`, '--out', path], { timeoutS: job.timeoutS });
          exportMs += performance.now() - t0;
          if (p.code !== 0 || !existsSync(path)) {
            failed = `ONNX export of ${stage} failed: ${procFailure(p, job.timeoutS)}`;
            break;
          }
        }
        files[stage] = path;
      }
      if (failed) {
        results.push(...mine.map((c) => ({ ...c, status: 'failed' as const, reason: failed! })));
        continue;
      }
      const jobFile = join(cacheDir, `ort-job-${process.pid}.json`);
      const childJob: OrtChildJob = { target, files, height: h, width: w, batches: job.batches, repeats: job.repeats, warmup: job.warmup, dawnFlags: job.dawnFlags, config: job.config };
      writeFileSync(jobFile, JSON.stringify(childJob));
      const env = { ...process.env };
      if (job.software) env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
      job.log(`peer ort: ONNX Runtime Web ${ortVersion} (WebGPU) ${target} ${h}x${w} ...`);
      const got = new Map<number, PeerResult>();
      let sessionMs = 0;
      const p = await runProcess(process.execPath, [self, '--ort-child', jobFile], {
        timeoutS: job.timeoutS,
        env,
        onJson: (r) => {
          if (r.type === 'session') {
            sessionMs = Number(r.sessionMs);
            job.log(`  ort session(s) created in ${(sessionMs / 1000).toFixed(1)} s on ${String(r.adapter)}`);
            return;
          }
          if (r.type !== 'result') return;
          const b = Number(r.batch);
          const base = { peer: 'ort' as const, target, batch: b, height: h, width: w, device: String(r.adapter), software: !!r.software, version: `onnxruntime-web ${ortVersion}` };
          const res: PeerResult = r.error
            ? { ...base, status: 'failed', reason: String(r.error) }
            : { ...base, status: 'ok', setupMs: exportMs + sessionMs, exportMs, firstRunMs: Number(r.firstRunMs), steady: statsOf(r.samplesMs as number[]) };
          if (res.status === 'ok') job.log(`  ort ${target} ${h}x${w} batch ${b}: first ${res.firstRunMs!.toFixed(0)} ms, median ${res.steady!.medianMs.toFixed(1)} ms`);
          got.set(b, res);
        },
      });
      results.push(...mine.map((c) => got.get(c.batch) ?? { ...c, status: 'failed' as const, reason: `no result: the ONNX Runtime Web process ${procFailure(p, job.timeoutS)}` }));
    }
  }
  return results;
}

/** Runs the requested peers one after the other. */
export async function runPeers(peers: PeerName[], job: PeerJob): Promise<PeerResult[]> {
  const out: PeerResult[] = [];
  for (const p of peers) {
    if (p === 'torch' || p === 'torch-cuda') out.push(...(await runTorch(job, p)));
    else if (p === 'ort') out.push(...(await runOrt(job)));
    else throw new Error(`unknown peer '${String(p)}' (torch, ort)`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the ONNX Runtime Web child process

/** What the parent asks the child to run. */
export interface OrtChildJob {
  target: string;
  files: Record<string, string>;
  height: number;
  width: number;
  batches: number[];
  repeats: number;
  warmup: number;
  dawnFlags: string[];
  config: string;
}

interface OrtTensor {
  data: Float32Array;
  dispose?: () => void;
}
interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, unknown>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface OrtModule {
  env: { logLevel?: string; versions?: unknown; wasm: { numThreads?: number } };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => unknown;
  InferenceSession: { create(model: Uint8Array, opts: Record<string, unknown>): Promise<OrtSession> };
}

// dawn.node's GPU object must stay referenced while its adapters and devices live (GPU.md).
const keep: unknown[] = [];

/**
 * The child: sets up navigator.gpu from dawn.node, imports onnxruntime-web/webgpu, creates the sessions and
 * times them. Writes JSON lines ({type: 'session'}, then {type: 'result'} per batch) to stdout.
 */
export async function ortChild(jobFile: string): Promise<number> {
  const job = JSON.parse(readFileSync(jobFile, 'utf8')) as OrtChildJob;
  const say = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const dawnName = 'webgpu';
  const dawn = (await import(/* @vite-ignore */ dawnName)) as { create(flags: string[]): GPU; globals: Record<string, unknown> };
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create(job.dawnFlags);
  keep.push(gpu);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter for ONNX Runtime Web');
  keep.push(adapter);
  const info = adapter.info;
  const adapterName = [info.vendor, info.architecture, info.device, info.description ? `(${info.description})` : ''].filter(Boolean).join(' ');
  const software = /swiftshader|llvmpipe|lavapipe/i.test(adapterName);
  // dawn.node rejects writeBuffer from a view of a SharedArrayBuffer (ONNX Runtime's wasm memory): copy those.
  const proto = (globalThis as unknown as { GPUQueue: { prototype: GPUQueue } }).GPUQueue.prototype;
  const orig = proto.writeBuffer;
  proto.writeBuffer = function (this: GPUQueue, buffer: GPUBuffer, offset: number, data: BufferSource | SharedArrayBuffer, dataOffset?: number, size?: number) {
    const isShared = (b: unknown) => typeof SharedArrayBuffer !== 'undefined' && b instanceof SharedArrayBuffer;
    if (ArrayBuffer.isView(data) && isShared(data.buffer)) {
      const v = data as unknown as Uint8Array;
      const start = dataOffset ?? 0;
      const end = size !== undefined ? start + size : v.length;
      return orig.call(this, buffer, offset, v.slice(start, end));
    }
    if (isShared(data)) {
      const v = new Uint8Array(data as SharedArrayBuffer);
      const start = dataOffset ?? 0;
      return orig.call(this, buffer, offset, v.slice(start, size !== undefined ? start + size : v.length));
    }
    return orig.call(this, buffer, offset, data as BufferSource, dataOffset, size);
  } as GPUQueue['writeBuffer'];
  const ortName = 'onnxruntime-web/webgpu';
  const ort = (await import(/* @vite-ignore */ ortName)) as OrtModule;
  ort.env.logLevel = 'error';
  const t0 = performance.now();
  const sessions: Record<string, OrtSession> = {};
  for (const [stage, path] of Object.entries(job.files)) {
    sessions[stage] = await ort.InferenceSession.create(new Uint8Array(readFileSync(path)), { executionProviders: ['webgpu'], graphOptimizationLevel: 'all' });
  }
  say({ type: 'session', sessionMs: performance.now() - t0, adapter: adapterName, software });
  const pre = defaultPreprocessConfig();
  const { height: H, width: W } = job;
  for (const batch of job.batches) {
    try {
      const windowed = syntheticWindowed(batch, H, W);
      const tensor = (x: Float32Array) => new ort.Tensor('float32', x, [batch, 3, H, W]);
      const runOne = async (s: OrtSession, x: Float32Array) => {
        const out = await s.run({ [s.inputNames[0]!]: tensor(x) });
        return out;
      };
      let fn: () => Promise<unknown>;
      if (job.target === 'pipeline') {
        const s1 = sessions.stage1!;
        const s2 = sessions.stage2!;
        fn = async () => {
          const r1 = await runOne(s1, normalise(windowed, batch, pre));
          const mask = lungMask(r1.lung_prob!.data, pre);
          return runOne(s2, maskedInput(windowed, mask, batch, pre));
        };
      } else {
        const s = sessions[job.target]!;
        const x = normalise(windowed, batch, pre);
        fn = () => runOne(s, x);
      }
      let t = performance.now();
      await fn();
      const firstRunMs = performance.now() - t;
      for (let i = 0; i < job.warmup; i++) await fn();
      const samplesMs: number[] = [];
      for (let i = 0; i < job.repeats; i++) {
        t = performance.now();
        await fn();
        samplesMs.push(performance.now() - t);
      }
      say({ type: 'result', batch, firstRunMs, samplesMs, adapter: adapterName, software });
    } catch (e) {
      say({ type: 'result', batch, error: (e as Error).message, adapter: adapterName, software });
    }
  }
  for (const s of Object.values(sessions)) await s.release();
  return 0;
}
