/**
 * The long-run fuzz runner:
 *
 *   npm run fuzz -- --cases N [--seed S] [--reader nifti|dicom|safetensors|rle|jpeg-lossless|jpeg-ls|j2k|inflate|gzip]
 *                   [--time-limit MS] [--case I] [--verbose]
 *
 * N cases per reader (default 1000), seed S (default 1). Case I of a reader is generated from (S, reader, I)
 * alone, so `--case I --reader R --seed S` reruns one finding. Prints, per reader, the cases run, how they ended
 * (value, typed error, finding), the slowest case and the most allocated relative to the input, then each finding
 * with the command that reruns it. Exits 1 when anything was found.
 *
 * A case that hangs in synchronous code cannot be interrupted from inside the process: with --verbose the runner
 * prints each case before it runs it, so the last line names the case.
 * @module
 */
import { caseSeed } from './mutate.js';
import { runCase, TARGETS, type CaseResult } from './targets.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const cases = Number(arg('cases') ?? 1000);
const seed = Number(arg('seed') ?? 1);
const timeLimit = Number(arg('time-limit') ?? 5000);
const only = arg('reader');
const single = arg('case');
const verbose = process.argv.includes('--verbose');
if (!Number.isInteger(cases) || cases < 0 || !Number.isInteger(seed)) {
  console.error('usage: npm run fuzz -- --cases N [--seed S] [--reader NAME] [--time-limit MS] [--case I] [--verbose]');
  process.exit(2);
}
if (only && !TARGETS[only]) {
  console.error(`unknown reader ${only}; readers: ${Object.keys(TARGETS).join(', ')}`);
  process.exit(2);
}

let findings = 0;
const started = Date.now();
console.log(`fuzz: seed ${seed}, ${single !== undefined ? `case ${single}` : `${cases} cases per reader`}, time bound ${timeLimit} ms per case`);
for (const t of Object.values(TARGETS)) {
  if (only && t.name !== only) continue;
  const t0 = Date.now();
  const count = { value: 0, 'typed-error': 0, finding: 0 };
  let slowest: (CaseResult & { i: number }) | undefined;
  let worstRatio: (CaseResult & { i: number; ratio: number }) | undefined;
  let largest = 0;
  const found: string[] = [];
  const kindsSeen = new Map<string, number>();
  const indices = single !== undefined ? [Number(single)] : Array.from({ length: cases }, (_, i) => i);
  for (const i of indices) {
    if (verbose) process.stderr.write(`${t.name} case ${i}\n`);
    const r = await runCase(t, caseSeed(seed, t.name, i), timeLimit);
    count[r.outcome]++;
    for (const k of r.kinds) kindsSeen.set(k, (kindsSeen.get(k) ?? 0) + 1);
    if (!slowest || r.ms > slowest.ms) slowest = { ...r, i };
    const ratio = r.alloc.total / Math.max(1, r.input);
    if (!worstRatio || ratio > worstRatio.ratio) worstRatio = { ...r, i, ratio };
    largest = Math.max(largest, r.alloc.largest);
    if (r.outcome === 'finding') {
      findings++;
      if (found.length < 20) found.push(`  case ${i} (${r.seed}; ${r.kinds.join(', ')}): ${r.problem}\n    rerun: npm run fuzz -- --reader ${t.name} --seed ${seed} --case ${i}`);
    }
  }
  const s = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`\n${t.name}: ${indices.length} cases in ${s} s (${t.what}): ${count.value} read, ${count['typed-error']} ${t.errorName}, ${count.finding} findings`);
  if (slowest) console.log(`  slowest case ${slowest.i}: ${slowest.ms.toFixed(0)} ms (${slowest.seed}; ${slowest.kinds.join(', ')})`);
  if (worstRatio) console.log(`  most allocated for its size, case ${worstRatio.i}: ${worstRatio.alloc.total} bytes for ${worstRatio.input} input bytes (${worstRatio.ratio.toFixed(1)} x; bound ${t.allocFactor} x + 1 MiB${t.codecHeap ? ' + the codec heap allowance' : ''}); largest single allocation in the run ${largest} bytes`);
  console.log(`  mutations: ${[...kindsSeen.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  for (const f of found) console.log(f);
}
const mem = process.memoryUsage();
console.log(`\n${findings} finding(s) in ${((Date.now() - started) / 1000).toFixed(0)} s; process peak-ish rss ${(mem.rss / 2 ** 20).toFixed(0)} MiB`);
process.exit(findings ? 1 : 0);
