/** Text rendering of a {@link BenchReport}: markdown tables, so a run can be pasted into bench/RESULTS.md. */
import type { BenchReport, PlanRow, Profile, ProfileRow, StageResult } from './core.js';
import { peerLabel } from './peers.js';

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

function ms(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  return v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 10 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`;
}

function num(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return '-';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 1 ? v.toFixed(Math.min(digits, 2)) : v.toPrecision(digits);
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function profileRows(rows: ProfileRow[], withOp: boolean): string[][] {
  return rows.map((r) => [
    r.key,
    ...(withOp ? [r.op] : []),
    String(r.dispatches),
    ms(r.gpuMs),
    `${(r.share * 100).toFixed(1)}%`,
    num(r.flops / 1e9),
    num(r.bytes / 2 ** 20),
    num(r.gflops),
    num(r.gbs),
    `${(r.roofline * 100).toFixed(1)}%`,
  ]);
}

const PROFILE_HEAD = ['dispatches', 'GPU time', 'share', 'GFLOP', 'MiB moved', 'GFLOP/s', 'GB/s', 'of roofline'];

/** The per-kernel tables of one result. */
export function formatProfile(r: StageResult, p: Profile, top: number): string {
  return [
    `### profile: ${r.target} ${r.height}x${r.width} batch ${r.batch} (${r.adapter}${r.software ? ', software' : ''})`,
    `${p.dispatches} dispatches, GPU time ${ms(p.gpuMs)} summed over dispatches (one pass each; the profiled run took ${ms(p.wallMs)} wall), ` +
      `roofline time ${ms(p.rooflineMs)} = ${(p.rooflineShare * 100).toFixed(1)}% of the GPU time`,
    '',
    'by op:',
    '',
    table(['op', ...PROFILE_HEAD], profileRows(p.byOp, false)),
    '',
    `by node (top ${Math.min(top, p.byNode.length)}):`,
    '',
    table(['node', 'op', ...PROFILE_HEAD], profileRows(p.byNode.slice(0, top), true)),
  ].join('\n');
}

/** The whole report as text. */
export function formatReport(rep: BenchReport, top = 15): string {
  const out: string[] = [];
  const soft = rep.adapter.software;
  out.push(`# covidct bench, ${rep.date}, commit ${rep.commit}, node ${rep.node}`);
  out.push(`adapter: ${rep.adapter.name}${soft ? ' -- SOFTWARE (a CPU driver): these are CPU timings, not GPU timings' : ''}`);
  // The engine's timings do not depend on the weights' values, and no trained weights exist for the bench's configs:
  // they run with seeded random weights, asked for by name (bench/core.ts randomWeightsFile), and say so.
  out.push(`weights: seeded random weights of the ${rep.options.config} config (timing only; bench:scan uses the trained default)`);
  out.push(`features: ${rep.adapter.features.join(', ') || '-'}; host wait ${rep.adapter.hostWait ?? 'spin'}; config ${rep.options.config}; precision ${rep.options.precision}; storage ${rep.options.storage ?? rep.options.precision}; tiles ${rep.options.tiles ?? 'auto'}; repeats ${rep.options.repeats}, warmup ${rep.options.warmup}`);
  if (rep.loadAverage) out.push(`load average (1 min) at start / end: ${rep.loadAverage.start.toFixed(2)} / ${rep.loadAverage.end.toFixed(2)} on ${rep.loadAverage.cpus} CPUs`);
  if (/llvmpipe/i.test(rep.adapter.name)) {
    const env = rep.lavapipeEnv ?? {};
    out.push(`lavapipe: LP_NUM_THREADS ${env.LP_NUM_THREADS ?? 'unset (one per core)'}, LP_NATIVE_VECTOR_WIDTH ${env.LP_NATIVE_VECTOR_WIDTH ?? 'unset'}; PyTorch peer threads ${rep.options.threads ?? 2}`);
  }
  if (rep.ceilings) {
    const c = rep.ceilings;
    out.push(`roofline ceilings: ${num(c.gflops)} GFLOP/s (${c.gflopsSource}), ${num(c.gbs)} GB/s (${c.gbsSource})`);
    for (const m of c.micro) out.push(`  microkernel ${m.what} ${m.shape}: ${ms(m.bestMs)} -> ${num(m.gflops)} GFLOP/s, ${num(m.gbs)} GB/s`);
  }
  out.push('');
  if (rep.results.length) {
    out.push('## engine');
    out.push('');
    out.push(
      table(
        ['target', 'size', 'batch', 'compile', 'of which pipelines', 'first run', 'steady median', 'min..max', 'slices/s', 'ms/slice', 'dispatches', 'GPU memory', 'GFLOP/fwd', 'GFLOP/s', 'outputs', 'adapter'],
        rep.results.map((r) => [
          r.target,
          `${r.height}x${r.width}`,
          String(r.batch),
          ms(r.compileMs),
          `${ms(r.pipelineCompileMs)} (${r.pipelinesCompiled})`,
          ms(r.firstRunMs),
          ms(r.steady.medianMs),
          `${ms(r.steady.minMs)}..${ms(r.steady.maxMs)}`,
          num(r.slicesPerS),
          ms(r.msPerSlice),
          String(r.dispatches),
          mib(r.memory.totalBytes),
          num(r.flops / 1e9),
          num(r.achievedGflops),
          r.outputs.finite ? `finite, max abs ${num(r.outputs.maxAbs)}` : 'NOT FINITE',
          `${r.software ? 'software: ' : ''}${r.adapter}`,
        ]),
      ),
    );
    out.push('');
    out.push('GPU memory = arena + weights + inputs/outputs + uniform slots (from the compiled graphs\' stats). Steady runs include input upload and output readback.');
    out.push('');
    const withCpu = rep.results.filter((r) => r.cpu);
    if (withCpu.length) {
      out.push('CPU time of the bench process (user + system, every thread; a software adapter\'s driver threads included), beside the wall times: on a shared machine the wall times also count the waiting for a core.');
      out.push('');
      out.push(
        table(
          ['target', 'size', 'batch', 'compile: wall', 'CPU', 'first run: wall', 'CPU', 'steady median: wall', 'CPU', 'slices per CPU-second'],
          withCpu.map((r) => [r.target, `${r.height}x${r.width}`, String(r.batch), ms(r.compileMs), ms(r.cpu!.compileMs), ms(r.firstRunMs), ms(r.cpu!.firstRunMs), ms(r.steady.medianMs), ms(r.cpu!.steadyMedianMs), num((r.batch * 1000) / r.cpu!.steadyMedianMs)]),
        ),
      );
      out.push('');
    }
    const withSplit = rep.results.filter((r) => r.split);
    if (withSplit.length) {
      out.push('Where the steady time goes (medians, ms): upload = writing the inputs into mapped staging buffers; submit = encode and submit; readback = from then until the outputs are copied out (GPU work, copies, map, error-scope checks); other = the rest (pipeline: the report\'s CPU work, patient head).');
      out.push('');
      out.push(
        table(
          ['target', 'size', 'batch', 'steady median', 'upload', 'submit', 'readback', 'other'],
          withSplit.map((r) => [r.target, `${r.height}x${r.width}`, String(r.batch), ms(r.steady.medianMs), ms(r.split!.uploadMs), ms(r.split!.submitMs), ms(r.split!.readbackMs), ms(r.split!.otherMs)]),
        ),
      );
      out.push('');
    }
  }
  if (rep.notMeasured.length) {
    out.push('## not measured');
    for (const n of rep.notMeasured) out.push(`- ${n.target} ${n.what}: ${n.reason}`);
    out.push('');
  }
  if (rep.peers.length) {
    out.push('## peers');
    out.push('');
    out.push(
      table(
        ['peer', 'target', 'size', 'batch', 'status', 'setup', 'first run', 'steady median', 'min..max', 'slices/s', 'engine / peer', 'CPU per steady run', 'slices per CPU-second', 'engine / peer per CPU-second', 'device'],
        rep.peers.map((p) => {
          const c = rep.comparisons.find((x) => x.peer === p.peer && x.mode === p.mode && x.target === p.target && x.batch === p.batch && x.height === p.height && x.width === p.width);
          return [
            peerLabel(p),
            p.target,
            `${p.height}x${p.width}`,
            String(p.batch),
            p.status === 'ok' ? 'ok' : `${p.status}: ${p.reason ?? ''}`,
            ms(p.setupMs),
            ms(p.firstRunMs),
            ms(p.steady?.medianMs),
            p.steady ? `${ms(p.steady.minMs)}..${ms(p.steady.maxMs)}` : '-',
            p.steady ? num((p.batch * 1000) / p.steady.medianMs) : '-',
            c ? `${num(c.ratio)}x` : '-',
            ms(p.cpuSteadyMedianMs),
            c?.cpu ? num(c.cpu.peerSlicesPerCpuS) : '-',
            c?.cpu ? `${num(c.cpu.ratio)}x` : '-',
            `${p.device ?? '-'}${p.version ? `, ${p.version}` : ''}${p.computeDtype ? `, computed in ${p.computeDtype}` : ''}${p.outputsFinite === false ? ', outputs NOT FINITE' : ''}`,
          ];
        }),
      ),
    );
    out.push('');
    out.push('engine / peer = engine slices/s divided by the peer\'s (above 1: the engine is faster), same size and batch; per CPU-second: the same with slices per CPU-second of each process (user + system, every thread, over the steady median run; PyTorch on the CPU only), which the waiting for a core on a shared machine does not enter.');
    if (rep.peers.some((p) => p.mode))
      out.push(
        `PyTorch modes, one row each, engine at precision ${rep.options.precision}: f32 = f32 NCHW, TF32 off; tf32-cl = TF32 on, channels-last; ` +
          'fp16-cl / bf16-cl = module.half() / module.to(bfloat16), channels-last, f32 input converted on the device and f32 outputs.',
      );
    out.push('');
  }
  for (const r of rep.results) if (r.profile) out.push(formatProfile(r, r.profile, top), '');
  return out.join('\n');
}

/** The `--plan` table: work per forward and per slice from the DispatchSpecs, and the roofline bound. */
export function formatPlan(rows: PlanRow[]): string {
  const out: string[] = [];
  const c = rows[0]?.ceilings;
  out.push(`# planned work (DispatchSpecs after fusion; no device; precision ${rows[0]?.precision ?? 'f32'}, storage ${rows[0]?.storage ?? 'f32'})${c ? `; roofline ceilings ${num(c.gflops)} GFLOP/s, ${num(c.gbs)} GB/s (${c.source})` : ''}`);
  out.push('');
  out.push(
    table(
      ['target', 'size', 'batch', 'dispatches', 'GFLOP/slice', 'min MB/slice', 'FLOP/byte', 'weights', 'arena', 'roofline ms/slice', 'roofline slices/s'],
      rows.map((r) => [
        r.target,
        `${r.height}x${r.width}`,
        String(r.batch),
        String(r.dispatches),
        num(r.flops / r.batch / 1e9),
        num(r.bytes / r.batch / 1e6),
        num(r.flops / r.bytes),
        mib(r.weightBytes),
        mib(r.arenaBytes),
        num((r.rooflineS * 1e3) / r.batch),
        num(r.batch / r.rooflineS),
      ]),
    ),
  );
  for (const r of rows)
    for (const [what, t] of [['op', r.byOp], ['model part', r.byModule]] as const) {
      out.push('');
      out.push(`${r.target} ${r.height}x${r.width} batch ${r.batch}, by ${what}:`);
      out.push('');
      const entries = Object.entries(t).sort((a, b) => b[1].flops - a[1].flops || b[1].bytes - a[1].bytes);
      out.push(
        table(
          [what, 'dispatches', 'GFLOP/slice', 'share of FLOPs', 'min MB/slice', 'share of bytes'],
          entries.map(([k, e]) => [k, String(e.dispatches), num(e.flops / r.batch / 1e9), `${((e.flops / r.flops) * 100).toFixed(1)}%`, num(e.bytes / r.batch / 1e6), `${((e.bytes / r.bytes) * 100).toFixed(1)}%`]),
        ),
      );
    }
  return out.join('\n');
}
