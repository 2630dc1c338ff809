/**
 * The covidct command line, callable in-process (`runCli(argv, io)` returns the exit code; tests pass their
 * own terminal and GPU). Commands:
 *   analyze [<scan>] [--weights W] [--out DIR] ...   a scan through both stages (src/cli/analyze.ts)
 *   inspect <path>                                   what a scan or weights file holds, no GPU (inspect.ts)
 *   batch <folder | list.csv> --out DIR [--weights W]  many studies, resumable, sharded (batch.ts)
 *   info | demo | run                                the engine's own commands (legacy.ts)
 * Exit codes: see common.ts and docs/cli.md.
 * @module
 */
import { analyzeCommand, ANALYZE_HELP } from './analyze.js';
import { batchCommand, BATCH_HELP } from './batch.js';
import { errorLine, EXIT, exitCodeOf, getGpu, UsageError, type CliIO } from './common.js';
import { inspectCommand, INSPECT_HELP } from './inspect.js';
import { conformance, demo, info } from './legacy.js';
import { parseArgs } from 'node:util';
import { CONFORMANCE_MODELS } from '../analysis/conformance.js';
import { SOFTWARE_COMMIT, SOFTWARE_VERSION } from '../analysis/report.js';

export const HELP = `usage: covidct <command> [options]   (covidct <command> --help for its options)
  analyze [<scan>] [--weights W] [--out DIR]   two-stage analysis of a DICOM folder/file, dicomweb: study, NIfTI or safetensors scan
          [--dicom] [--store URL]               (--dicom: also DICOM SEG, SR and a Secondary Capture; --store: send them with STOW-RS)
                                                (no scan: the embedded phantom; weights: the bundled trained model
                                                unless --weights names a file, or 'random' for seeded random weights)
  inspect <path>                                series, geometry, HU range of a scan; config and tensors of weights
  batch <folder | list.csv> --out DIR [--weights W] [--shard K/N]   many studies, one folder each, summary.csv
  info                                          the adapter, its features and limits
  demo [--batch N]                              a small network on the GPU against the CPU references
  run --model M --weights W --input IN --output OUT [--dump]   conformance (models: ${CONFORMANCE_MODELS.join(', ')})
common: --software[=lavapipe|swiftshader] (software adapter), --dawn-flags a,b, --debug (stack traces, driver messages)
covidct --version: the version (and the commit the build was made from)
exit codes: 0 ok, 1 unexpected error, 2 bad usage, 3 bad input, 4 no GPU, 5 GPU failure, 6 DICOMweb retrieve failed,
            7 DICOMweb store failed, 130 interrupted`;

/** Runs the CLI on `argv` (without the node and script paths); returns the exit code, never throws. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  const debug = argv.includes('--debug');
  if (argv[0] === '--version' || argv[0] === '-V') {
    io.stdout(`covidct ${SOFTWARE_VERSION}${SOFTWARE_COMMIT ? ` (build ${SOFTWARE_COMMIT})` : ''}\n`);
    return EXIT.ok;
  }
  const cmd = argv[0] && !argv[0].startsWith('-') ? argv[0] : argv.length === 0 ? 'analyze' : argv.includes('--help') || argv[0] === '-h' ? 'help' : 'analyze';
  // `--software` alone means any software driver; `--software=<driver>` names one (parseSoftwareOption)
  const rest = (argv[0] === cmd ? argv.slice(1) : argv).map((a) => (a === '--software' ? '--software=true' : a));
  try {
    switch (cmd) {
      case 'help':
        io.stdout(HELP + '\n');
        return EXIT.ok;
      case 'analyze':
        return await analyzeCommand(rest, io);
      case 'inspect':
        return await inspectCommand(rest, io);
      case 'batch':
        return await batchCommand(rest, io);
      case 'info':
      case 'demo':
      case 'run': {
        if (rest.includes('--help')) {
          io.stdout(HELP + '\n');
          return EXIT.ok;
        }
        const { values } = parseArgs({ args: rest, strict: false, options: { software: { type: 'string' }, 'dawn-flags': { type: 'string' } } });
        const flags = values['dawn-flags'];
        const { gpu, owned } = await getGpu(io, typeof values.software === 'string' ? values.software : undefined, typeof flags === 'string' ? flags : undefined, debug);
        try {
          if (cmd === 'info') return await info(gpu, io);
          if (cmd === 'demo') return await demo(gpu, rest, io);
          return await conformance(gpu, rest, io);
        } finally {
          if (owned) gpu.destroy();
        }
      }
      default:
        throw new UsageError(`unknown command '${cmd}' (try: covidct help)`);
    }
  } catch (e) {
    io.stderr(errorLine(e) + '\n');
    if (debug && e instanceof Error && e.stack) io.stderr(e.stack + '\n');
    return exitCodeOf(e);
  }
}

export { ANALYZE_HELP, BATCH_HELP, INSPECT_HELP };
