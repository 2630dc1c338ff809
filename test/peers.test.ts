// The PyTorch peers' modes (f32, tf32-cl, fp16-cl, bf16-cl): the --torch-modes option, the report's per-mode
// labels and ratios, and weights/peers/torch_bench.py in each mode on the CPU. What the CPU part proves: every
// mode builds, converts the weights and the input to its dtype and memory format (dry run), f32 and bf16-cl
// run and compute in their dtype, tf32-cl is refused without CUDA, and fp16-cl either runs in float16 or fails
// with torch's own message (Debian's torch 1.13 has no CPU half kernels). Not proven here: fp16 and TF32 on CUDA.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../bench/args.js';
import type { BenchReport, StageResult } from '../bench/core.js';
import { formatReport } from '../bench/format.js';
import { DEFAULT_TORCH_MODES, ROOT, TORCH_PYTHON, parseTorchModes, peerLabel, runPeers, type PeerResult } from '../bench/peers.js';

const SCRIPT = join(ROOT, 'weights', 'peers', 'torch_bench.py');

/** Debian's torch importable at /usr/bin/python3 (CI installs no Python: the Python cases are skipped there). */
const hasTorch = spawnSync(TORCH_PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status === 0;

describe('--torch-modes', () => {
  it('parses the PyTorch peers\' modes and refuses unknown ones with a message', () => {
    expect(parseBenchArgs(['--peers', 'torch-cuda', '--torch-modes', 'fp16-cl,f32']).opts.torchModes).toEqual(['fp16-cl', 'f32']);
    expect(parseBenchArgs(['--torch-modes=tf32-cl,bf16-cl,tf32-cl']).opts.torchModes).toEqual(['tf32-cl', 'bf16-cl']);
    expect(parseBenchArgs(['--peers', 'torch-cuda']).opts.torchModes).toBeUndefined();
    expect(() => parseBenchArgs(['--torch-modes', 'f32,fp8'])).toThrow('--torch-modes: unknown fp8 (f32, tf32-cl, fp16-cl, bf16-cl)');
    expect(() => parseBenchArgs(['--torch-modes'])).toThrow(/--torch-modes: unknown true/);
    expect(() => parseTorchModes(' , ')).toThrow(/--torch-modes: no mode given/);
    // without the option, the CUDA peer runs the three modes the targets are ratios against; the CPU peer f32
    expect(DEFAULT_TORCH_MODES['torch-cuda']).toEqual(['f32', 'tf32-cl', 'fp16-cl']);
    expect(DEFAULT_TORCH_MODES.torch).toEqual(['f32']);
  });
});

function engineResult(target: 'stage2', slicesPerS: number): StageResult {
  const medianMs = (16 * 1000) / slicesPerS;
  const steady = { runs: 1, medianMs, minMs: medianMs, maxMs: medianMs, p25Ms: medianMs, p75Ms: medianMs, samplesMs: [medianMs] };
  return {
    target, config: 'default', batch: 16, height: 512, width: 512, precision: 'f16', storage: 'f16', adapter: 'test adapter', software: false,
    weightsMs: 1, compileMs: 1, pipelineCompileMs: 1, pipelinesCompiled: 1, firstRunMs: 1,
    steady,
    slicesPerS, msPerSlice: medianMs / 16, dispatches: 1,
    memory: { arenaBytes: 0, weightBytes: 0, ioBytes: 0, uniformBytes: 0, totalBytes: 0 },
    flops: 1, bytes: 1, achievedGflops: 1, outputs: { finite: true, maxAbs: 1 },
  };
}

function peer(mode: PeerResult['mode'], slicesPerS: number, computeDtype: string): PeerResult {
  const medianMs = (16 * 1000) / slicesPerS;
  return {
    peer: 'torch-cuda', ...(mode ? { mode } : {}), target: 'stage2', batch: 16, height: 512, width: 512, status: 'ok', device: 'cuda: test GPU', software: false,
    version: 'torch 2.x', computeDtype, setupMs: 1, firstRunMs: 1,
    steady: { runs: 1, medianMs, minMs: medianMs, maxMs: medianMs, p25Ms: medianMs, p75Ms: medianMs, samplesMs: [medianMs] },
  };
}

describe('the report', () => {
  it('labels each PyTorch mode and gives each its own engine / peer ratio', () => {
    const e = engineResult('stage2', 300);
    const peers = [peer('f32', 200, 'float32'), peer('tf32-cl', 320, 'float32'), { ...peer('fp16-cl', 600, 'float16'), outputsFinite: false }];
    const rep = {
      tool: 'covidct bench', date: 'd', commit: 'c', node: 'n',
      adapter: { name: 'test adapter', software: false, features: [], subgroupMinSize: 32, subgroupMaxSize: 32 },
      options: { sizes: [[512, 512]], batches: [16], stages: ['stage2'], models: [], config: 'default', repeats: 1, warmup: 0, precision: 'f16', profile: false, peers: ['torch-cuda'], software: false },
      ceilings: null, results: [e], notMeasured: [],
      peers,
      // as runBench makes them: one per peer result, carrying its mode
      comparisons: peers.map((p) => ({ target: p.target, batch: p.batch, height: p.height, width: p.width, peer: p.peer, mode: p.mode!, engineSlicesPerS: 300, peerSlicesPerS: (p.batch * 1000) / p.steady!.medianMs, ratio: 300 / ((p.batch * 1000) / p.steady!.medianMs) })),
    } as BenchReport;
    const text = formatReport(rep);
    const row = (label: string) => text.split('\n').find((l) => l.startsWith(`| ${label} | stage2 |`));
    expect(row('torch-cuda f32')).toMatch(/\| 200 \| 1\.50x \| - \| - \| - \| cuda: test GPU, torch 2\.x, computed in float32 \|$/);
    expect(row('torch-cuda tf32-cl')).toMatch(/\| 320 \| 0\.938x \|/);
    expect(row('torch-cuda fp16-cl')).toMatch(/\| 600 \| 0\.500x \| - \| - \| - \| cuda: test GPU, torch 2\.x, computed in float16, outputs NOT FINITE \|$/);
    expect(text).toContain('PyTorch modes, one row each, engine at precision f16');
    expect(peerLabel({ peer: 'ort' })).toBe('ort');
  });
  it('shows the peer\'s CPU time per run and the engine / peer ratio per CPU-second where the comparison has them', () => {
    const p: PeerResult = { ...peer('f32', 100, 'float32'), peer: 'torch', device: 'cpu (2 threads)', cpuSteadyMedianMs: 320 };
    const rep = {
      tool: 'covidct bench', date: 'd', commit: 'c', node: 'n',
      adapter: { name: 'test adapter', software: true, features: [], subgroupMinSize: 16, subgroupMaxSize: 16 },
      options: { sizes: [[512, 512]], batches: [16], stages: ['stage2'], models: [], config: 'default', repeats: 1, warmup: 0, precision: 'f32', profile: false, peers: ['torch'], software: true },
      ceilings: null, results: [engineResult('stage2', 300)], notMeasured: [],
      peers: [p],
      comparisons: [{ target: 'stage2', batch: 16, height: 512, width: 512, peer: 'torch', mode: 'f32', engineSlicesPerS: 300, peerSlicesPerS: 100, ratio: 3, cpu: { engineSlicesPerCpuS: 80, peerSlicesPerCpuS: 50, ratio: 1.6 } }],
    } as BenchReport;
    expect(formatReport(rep).split('\n').find((l) => l.startsWith('| torch f32 | stage2 |'))).toMatch(/\| 100 \| 3\.00x \| 320 ms \| 50\.00 \| 1\.60x \| cpu \(2 threads\)/);
  });
});

describe.skipIf(!hasTorch)('torch_bench.py on the CPU (Debian torch)', () => {
  it('runs f32 and bf16-cl in their dtypes, refuses tf32-cl without CUDA, and fp16-cl runs in float16 or fails with torch\'s reason', async () => {
    const log: string[] = [];
    const res = await runPeers(['torch'], {
      config: 'tiny', sizes: [[32, 32]], batches: [1], targets: ['stage1'], repeats: 1, warmup: 0, software: true, dawnFlags: [], timeoutS: 300,
      torchModes: ['f32', 'bf16-cl', 'tf32-cl', 'fp16-cl'], log: (l) => log.push(l),
    });
    const by = new Map(res.map((r) => [r.mode, r]));
    expect(res.map((r) => peerLabel(r))).toEqual(['torch f32', 'torch bf16-cl', 'torch tf32-cl', 'torch fp16-cl']);
    for (const [mode, dtype] of [['f32', 'float32'], ['bf16-cl', 'bfloat16']] as const) {
      const r = by.get(mode)!;
      expect(r.status, `${mode}: ${r.reason ?? ''}`).toBe('ok');
      expect(r.computeDtype).toBe(dtype);
      expect(r.outputsFinite).toBe(true);
      expect(r.steady!.runs).toBe(1);
      expect(r.steady!.medianMs).toBeGreaterThan(0);
      expect(r.cpuSteadyMedianMs, `${mode}: CPU time per steady run`).toBeGreaterThan(0);
    }
    expect(by.get('tf32-cl')!.status).toBe('failed');
    expect(by.get('tf32-cl')!.reason).toMatch(/^tf32-cl needs CUDA/);
    const fp16 = by.get('fp16-cl')!;
    if (fp16.status === 'ok') expect(fp16.computeDtype).toBe('float16');
    else expect(fp16.reason).toMatch(/not implemented for 'Half'/);
    expect(log.join('\n')).toContain('modes f32, bf16-cl, tf32-cl, fp16-cl');
  });

  it('--dry-run converts the weights and the input to each mode\'s dtype and memory format, with TF32 only in tf32-cl', () => {
    const p = spawnSync(TORCH_PYTHON, [SCRIPT, '--config', 'tiny', '--targets', 'stage1,pipeline', '--sizes', '32x32', '--batches', '2', '--modes', 'f32,tf32-cl,fp16-cl,bf16-cl', '--dry-run'], { encoding: 'utf8', timeout: 300_000 });
    expect(p.status, p.stderr).toBe(0);
    const recs = p.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.map((r) => `${String(r.target)} ${String(r.mode)}`)).toEqual(['stage1', 'pipeline'].flatMap((t) => ['f32', 'tf32-cl', 'fp16-cl', 'bf16-cl'].map((m) => `${t} ${m}`)));
    const want = { f32: ['float32', false], 'tf32-cl': ['float32', true], 'fp16-cl': ['float16', true], 'bf16-cl': ['bfloat16', true] } as const;
    for (const r of recs) {
      const [dtype, cl] = want[r.mode as keyof typeof want];
      const what = `${String(r.target)} ${String(r.mode)}`;
      expect(r.dryRun, what).toBe(true);
      expect(r.samplesMs, what).toBeUndefined();
      expect(r.paramDtypes, what).toEqual([dtype]); // parameters and floating buffers (BatchNorm statistics)
      expect(r.inputDtype, what).toBe(dtype);
      expect(r.weights4d as number, what).toBeGreaterThan(50);
      if (cl) expect([r.nchwOnlyWeights, r.channelsLastWeights], what).toEqual([0, r.weights4d]);
      else expect(r.nchwOnlyWeights as number, what).toBeGreaterThan(10);
      // stage 1's input has three channels (channels-last is visible); the pipeline's one (both layouts at once)
      expect(r.inputMemoryFormat, what).toBe(r.target === 'pipeline' ? 'both' : cl ? 'channels_last' : 'contiguous');
      expect(r.tf32, what).toEqual({ matmul: r.mode === 'tf32-cl', cudnn: r.mode === 'tf32-cl' });
    }
  });

  it('the script refuses an unknown mode with a message', () => {
    const p = spawnSync(TORCH_PYTHON, [SCRIPT, '--modes', 'f32,fp8', '--dry-run'], { encoding: 'utf8', timeout: 120_000 });
    expect(p.status).toBe(2);
    expect(p.stderr).toContain('--modes: unknown mode(s) fp8 (known: f32, tf32-cl, fp16-cl, bf16-cl)');
    expect(p.stdout).toBe('');
  });
});
