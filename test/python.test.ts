// The Python side's own tests (weights/): the PyTorch reference's smoke test, the training recipe's tests (the
// generator's masks agree with its labels, a few training steps lower each stage's loss, the infection losses do not
// reward empty maps, train.py exports metadata and resumes), and the lesion synthesis on real lungs and the
// calibration (test_lesions.py: the masks are what was inserted, the patterns are the classes', the temperature and
// the out-of-distribution score are fitted and stored as stated). They run with Debian's interpreter and torch
// (scripts/install-deps.sh installs python3-torch); each script prints 'N passed, 0 failed' and exits 1 on a failure.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './fixtures.js';

function runPython(script: string): { status: number | null; out: string } {
  const r = spawnSync('/usr/bin/python3', [join(ROOT, 'weights', script)], { cwd: ROOT, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

describe('weights/ Python tests', () => {
  for (const script of ['test_reference.py', 'test_train.py', 'test_lesions.py']) {
    it(script, () => {
      const { status, out } = runPython(script);
      const m = /(\d+) passed, (\d+) failed/.exec(out);
      expect(m, out.slice(-2000)).not.toBeNull();
      expect(Number(m![2]), out.slice(-2000)).toBe(0);
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(status, out.slice(-2000)).toBe(0);
    }, 320_000);
  }
});
