/**
 * What the bench tools do with the lines Dawn and the Vulkan drivers print while the adapter is found
 * (GpuOptions.driverMessages): on lavapipe always two of Dawn's, "maxDynamic...BuffersPerPipelineLayout
 * artificially reduced ...", which say nothing about a measurement and used to open every report. Those are dropped;
 * any other line is kept on stderr, marked as the driver's.
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
