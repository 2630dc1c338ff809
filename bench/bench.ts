#!/usr/bin/env node
/**
 * `npm run bench` (node dist/bench.js): times the engine's stages and pipeline, optionally against PyTorch CPU
 * and ONNX Runtime Web; see docs/performance.md for what is measured and bench/RESULTS.md for figures.
 */
import { writeFileSync } from 'node:fs';
import { HELP, parseBenchArgs } from './args.js';
import { planBench, runBench } from './core.js';
import { formatPlan, formatReport } from './format.js';
import { ortChild } from './peers.js';

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--ort-child') return ortChild(argv[1]!);
  let parsed: ReturnType<typeof parseBenchArgs>;
  try {
    parsed = parseBenchArgs(argv);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (parsed.help) {
    console.log(HELP);
    return 0;
  }
  if (parsed.plan) {
    let rows: ReturnType<typeof planBench>;
    try {
      rows = planBench(parsed.opts);
    } catch (e) {
      console.error((e as Error).message);
      return 2;
    }
    if (parsed.out) writeFileSync(parsed.out, `${JSON.stringify(rows, null, 1)}\n`);
    if (parsed.json) process.stdout.write(`${JSON.stringify(rows, null, 1)}\n`);
    else console.log(formatPlan(rows));
    return 0;
  }
  const log = (line: string) => (parsed.json ? console.error(line) : console.log(line));
  const report = await runBench({ ...parsed.opts, log });
  if (parsed.out) writeFileSync(parsed.out, `${JSON.stringify(report, null, 1)}\n`);
  if (parsed.json) process.stdout.write(`${JSON.stringify(report, null, 1)}\n`);
  else console.log(`\n${formatReport(report, parsed.top)}`);
  return report.results.length || report.notMeasured.length ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
