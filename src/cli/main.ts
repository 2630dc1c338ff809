#!/usr/bin/env node
/**
 * The covidct command (bin): runs {@link runCli} on the process's arguments and exits with its code.
 * Commands, options and exit codes: src/cli/cli.ts and docs/cli.md.
 */
import { runCli } from './cli.js';
import { processIO } from './common.js';

runCli(process.argv.slice(2), processIO()).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`covidct: unexpected error: ${(e as Error)?.message ?? e}\n`);
    process.exit(1);
  },
);
