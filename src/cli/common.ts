/**
 * What the commands share: the terminal (stdout for results only, stderr for progress and errors), the exit
 * codes and how an error becomes one line, the GPU, and the weights.
 *
 * Exit codes (docs/cli.md): 0 done; 1 anything unexpected (a bug: the message says so); 2 bad usage (unknown
 * option, missing argument, an output folder that cannot be used); 3 bad input (a scan or weights file that
 * cannot be read or used: ScanError, VolumeError, WeightsError, ...); 4 no GPU (GpuUnavailableError); 5 the GPU
 * failed during the run (GpuDeviceError; also its subclasses GpuLimitError, a batch or input size beyond the GPU's
 * limits or memory, whose message names the batch that fits, and GpuTimeoutError, the GPU not finishing within
 * --gpu-timeout); 6 a DICOMweb server could not be used to retrieve the scan (unreachable, refused, an HTTP error);
 * 7 the DICOM outputs could not all be stored with --store (the server was unreachable, refused them or stored
 * only some; the output folder, if any, is written); 130 interrupted (SIGINT). A study or series that the
 * DICOMweb server does not have is bad input (3); a malformed DICOMweb URL or credentials variable, bad usage (2).
 * @module
 */
import { createHash } from 'node:crypto';
import { AnalysisAbortedError, type AnalysisProgress } from '../analysis/analyze.js';
import { createGpu, GpuDeviceError, GpuUnavailableError, parseDawnFlags, parseSoftwareOption, type GpuContext, type SoftwareDriver } from '../gpu/device.js';
import type { PipelineCache } from '../gpu/pipelines.js';
import { ScanError } from '../io/errors.js';
import { SafetensorsError, type SafetensorsFile } from '../io/safetensors.js';
import { ConfigError, defaultPreprocessConfig, tinyModelConfig } from '../models/config.js';
import { checkWeights, openWeights, WeightsError } from '../models/load.js';
import { randomPipelineWeights } from '../models/random-weights.js';
import { DicomWebError } from '../node/dicomweb.js';
import { defaultWeights, RANDOM_WEIGHTS } from '../node/default-weights.js';
import { OutputDirError } from '../node/output-dir.js';
import { readWholeFile } from '../node/read-file.js';
import { VolumeError } from '../volume/volume.js';

/** The exit codes; see the module comment. */
export const EXIT = { ok: 0, other: 1, usage: 2, input: 3, noGpu: 4, gpuFailure: 5, dicomweb: 6, store: 7, interrupted: 130 } as const;

/** Bad usage: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Where the CLI writes and where it gets a GPU (tests pass their own). */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Whether stderr is a terminal (progress is shown only then). */
  stderrIsTTY: boolean;
  /** A GPU and optional pipeline cache; `owned` false: the CLI must not destroy it. Default: createGpu. */
  gpu?: (opts: { forceSoftware: boolean | SoftwareDriver; dawnFlags: string[] }) => Promise<{ gpu: GpuContext; cache?: PipelineCache; owned: boolean }>;
}

/** The process's terminal. */
export function processIO(): CliIO {
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    stderrIsTTY: !!process.stderr.isTTY,
  };
}

/** The exit code for an error. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof UsageError || e instanceof OutputDirError) return EXIT.usage;
  if ((e as { code?: string })?.code?.startsWith?.('ERR_PARSE_ARGS')) return EXIT.usage;
  if (e instanceof ScanError || e instanceof VolumeError || e instanceof WeightsError || e instanceof ConfigError || e instanceof SafetensorsError) return EXIT.input;
  if (e instanceof DicomWebError) return e.stage === 'config' ? EXIT.usage : e.notFound ? EXIT.input : e.stage === 'store' ? EXIT.store : EXIT.dicomweb;
  if (e instanceof GpuUnavailableError) return EXIT.noGpu;
  if (e instanceof GpuDeviceError) return EXIT.gpuFailure;
  if (e instanceof AnalysisAbortedError) return EXIT.interrupted;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR') return EXIT.input;
  return EXIT.other;
}

/** One line for an error: the file and the problem, no stack. */
export function errorLine(e: unknown): string {
  const err = e as Error & { path?: string; code?: string };
  let msg = String(err?.message ?? e);
  if (e instanceof WeightsError) {
    const lines = msg.split('\n');
    msg = lines[0]! + (e.issues.length > 1 ? ` ${e.issues.length} problems, first: ${e.issues[0]!.message}` : ` ${e.issues[0]?.message ?? ''}`);
  }
  const code = err?.code;
  if ((code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') && err.path) msg = `${err.path}: ${code === 'ENOENT' ? 'no such file or folder' : code === 'EACCES' ? 'permission denied' : 'is a folder, not a file'}`;
  msg = msg.replace(/\s*\n\s*/g, ' ').trim();
  const kind = exitCodeOf(e) === EXIT.other ? `unexpected error (${err?.name ?? 'Error'}; --debug shows where): ` : '';
  return `covidct: ${kind}${msg}`;
}

/** Positive integer option. */
export function positiveInt(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${name} must be a positive integer, got '${raw}'`);
  return v;
}

/** The weights: a file (its bytes, parsed, and their SHA-256) or seeded random weights; `name` is what outputs show. */
export interface LoadedWeights {
  file: SafetensorsFile;
  sha256: string | null;
  name: string;
}

/**
 * The weights `--weights` names: none, the package's trained default (src/node/default-weights.ts, found relative to
 * the package, not the working directory); 'random', seeded random weights of the tiny config (untrained: the
 * engine's own tests and the bench); anything else, a weights file path as given.
 */
export async function loadWeights(path: string | undefined): Promise<LoadedWeights> {
  if (path === RANDOM_WEIGHTS) {
    const file = randomPipelineWeights(tinyModelConfig(), defaultPreprocessConfig(), 1);
    return { file, sha256: null, name: file.name };
  }
  const { path: file, name } = path === undefined ? defaultWeights() : { path, name: path };
  const bytes = await readWholeFile(file, (problem) => new WeightsError(file, [{ kind: 'file', message: problem }]), { what: 'a weights file' });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  // Checked whole on the CPU (config and every tensor), so a file that is not covidct weights fails here, once.
  return { file: checkWeights(openWeights(bytes, name)), sha256, name };
}

/**
 * GPU options from the common flags. `software` is the `--software` value: undefined (hardware first), 'true' (any
 * software driver) or a driver's name; anything else is a usage error. What Dawn and the Vulkan drivers print while
 * the adapter is found (on lavapipe always two lines of Dawn's about limits it lowers) is not covidct's output: shown
 * on stderr with `--debug` (`debug`), else dropped (GpuOptions.driverMessages).
 */
export async function getGpu(io: CliIO, software: string | undefined, dawnFlags: string | undefined, debug = false) {
  let forceSoftware: boolean | SoftwareDriver;
  try {
    forceSoftware = parseSoftwareOption(software);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const opts = { forceSoftware, dawnFlags: dawnFlags ? parseDawnFlags(dawnFlags) : [] };
  if (io.gpu) return io.gpu(opts);
  const driverMessages = (text: string) => {
    if (debug) io.stderr(text.replace(/^(?=.)/gm, 'driver: '));
  };
  return { gpu: await createGpu({ ...opts, driverMessages }), owned: true };
}

/** A progress line on stderr, updated in place (only when stderr is a terminal and not --quiet). */
export function progressLine(io: CliIO, quiet: boolean, prefix = ''): { update(p: AnalysisProgress): void; done(): void } {
  const on = io.stderrIsTTY && !quiet;
  let shown = false;
  return {
    update(p) {
      if (!on) return;
      let line = `${prefix}${p.stage}`;
      if (p.stage === 'analyze') {
        line += ` ${p.done}/${p.total} slices`;
        if (p.slicesPerSecond) line += `, ${p.slicesPerSecond.toFixed(1)} slices/s, ${Math.ceil((p.total - p.done) / p.slicesPerSecond)} s left`;
      }
      io.stderr(`\r${line}\x1b[K`);
      shown = true;
    },
    done() {
      if (shown) io.stderr('\r\x1b[K');
      shown = false;
    },
  };
}

/** Formats a number or a dash for null. */
export function fmt(v: number | null | undefined, digits = 1, unit = ''): string {
  return v === null || v === undefined ? '-' : `${v.toFixed(digits)}${unit}`;
}
