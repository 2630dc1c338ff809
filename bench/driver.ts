import { parseSoftwareOption, type SoftwareDriver } from '../src/gpu/device.js';

/**
 * The bench tools' adapter choice and driver chatter. `--software`: {@link softwareOrExit}. The lines Dawn and the
 * Vulkan drivers print while the adapter is found (GpuOptions.driverMessages), on lavapipe always two of Dawn's,
 * "maxDynamic...BuffersPerPipelineLayout artificially reduced ...", say nothing about a measurement and used to open
 * every report: those are dropped; any other line is kept on stderr, marked as the driver's.
 */
const KNOWN = /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced/;

/** Returns the lines of `text` that are not the known lavapipe limit notices. */
export function unexpectedDriverLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '' && !KNOWN.test(l));
}

/** A GpuOptions.driverMessages handler for the bench tools: the unexpected lines to stderr, prefixed 'driver: '. */
export function benchDriverMessages(text: string): void {
  for (const l of unexpectedDriverLines(text)) process.stderr.write(`driver: ${l}\n`);
}

/** A bench script's `--NAME VALUE`: the word after the flag, else `fallback`. */
export function argValue(name: string, fallback: string): string {
  const argv = process.argv;
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1]! : fallback;
}

/**
 * A bench script's adapter from its command line: `--software DRIVER` that driver, `--software` alone any software
 * adapter, no flag `fallback` (parseSoftwareOption; a bad value throws).
 */
export function softwareArg(fallback: string | undefined): boolean | SoftwareDriver {
  return parseSoftwareOption(process.argv.includes('--software') ? argValue('software', 'true') : fallback);
}

/** A bench script's `--software` value (parseSoftwareOption); a bad one prints its message and exits 2 (bad usage). */
export function softwareOrExit(value: string | undefined): boolean | SoftwareDriver {
  try {
    return parseSoftwareOption(value);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
}
