// The Python side's own tests (weights/): the PyTorch reference's smoke test, the training recipe's tests (the
// generator's masks agree with its labels, a few training steps lower each stage's loss, the infection losses do not
// reward empty maps, train.py exports metadata and resumes), and the lesion synthesis on real lungs and the
// calibration (test_lesions.py: the masks are what was inserted, the patterns are the classes', the temperature and
// the out-of-distribution score are fitted and stored as stated), and the real scans' sources (test_real_data.py: the
// file selections, the writing of a source from a bare git mirror), and the real 2-D slice sets (test_slices2d.py: the
// RICORD DICOM slabs read in HU with their patients' labels). They run with Debian's interpreter and torch
// (scripts/install-deps.sh installs python3-torch); each script prints 'N passed, 0 failed' and exits 1 on a failure.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './fixtures.js';

/**
 * Runs a script asynchronously: a synchronous spawn would block this worker's event loop for the script's whole
 * run (up to a minute), and on a loaded machine vitest's own messages from the worker then time out ("Timeout
 * calling onTaskUpdate", which fails the run).
 */
function runPython(script: string): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/python3', [join(ROOT, 'weights', script)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const add = (b: Buffer) => {
      if (out.length < 64 << 20) out += b.toString('utf8');
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    const timer = setTimeout(() => {
      out += `\n(killed after 300 s)`;
      child.kill('SIGKILL');
    }, 300_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ status: null, out: `${out}${String(e)}` });
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

describe('weights/ Python tests', () => {
  for (const script of ['test_reference.py', 'test_train.py', 'test_lesions.py', 'test_real_data.py', 'test_slices2d.py']) {
    it(script, async () => {
      const { status, out } = await runPython(script);
      const m = /(\d+) passed, (\d+) failed/.exec(out);
      expect(m, out.slice(-2000)).not.toBeNull();
      expect(Number(m![2]), out.slice(-2000)).toBe(0);
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(status, out.slice(-2000)).toBe(0);
    }, 320_000);
  }
});
