/**
 * Host memory of one whole-scan analysis: `npm run bench:scan -- [--scan PATH | --synthetic 512x512x600] [--weights W (default: the package's trained model)]
 * [--batch N] [--software[=NAME]] [--no-outputs]`.
 *
 * Runs what `covidct analyze` runs (a scan from a path, or a synthetic volume, through analyzeVolume batch by batch,
 * then the output files made in memory) and reports the process's peak resident memory (getrusage maxrss) next to
 * the volume's own bytes, the adapter and the slices per second. The synthetic volume is the committed sample
 * (samples/synthetic-covid.nii.gz, 128 x 128 x 10) repeated to the asked size (nearest neighbour in-plane, slices
 * cycled): realistic HU, built directly as Int16 so that making it costs no more than the volume itself.
 * @module
 */
import { defaultWeights } from '../src/node/default-weights.js';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { analyzeVolume } from '../src/analysis/analyze.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { makeOutputFiles } from '../src/analysis/outputs.js';
import { createGpu, parseSoftwareOption } from '../src/gpu/device.js';
import { readNifti } from '../src/io/nifti.js';
import { openWeights } from '../src/models/load.js';
import { loadScan } from '../src/node/scan-path.js';
import type { Volume } from '../src/volume/volume.js';
import { benchDriverMessages } from './driver.js';

const MiB = 1024 * 1024;
const rssMiB = () => process.memoryUsage().rss / MiB;
const maxRssMiB = () => process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB

async function syntheticVolume(nx: number, ny: number, nz: number): Promise<Volume> {
  const sample = await readNifti(new Uint8Array(readFileSync('samples/synthetic-covid.nii.gz')), 'samples/synthetic-covid.nii.gz');
  const [sx, sy, sz] = sample.dims;
  const data = new Int16Array(nx * ny * nz);
  const xs = Int32Array.from({ length: nx }, (_, x) => Math.min(sx - 1, Math.floor((x * sx) / nx)));
  for (let k = 0; k < nz; k++) {
    const sk = k % sz;
    for (let y = 0; y < ny; y++) {
      const row = (Math.min(sy - 1, Math.floor((y * sy) / ny)) + sy * sk) * sx;
      const o = (y + ny * k) * nx;
      for (let x = 0; x < nx; x++) data[o + x] = sample.data[row + xs[x]!]!;
    }
  }
  const [px, py] = sample.spacing;
  const a = new Float64Array(sample.affine);
  // Scale the in-plane columns so the field of view stays the sample's; 1 mm slices.
  for (let r = 0; r < 3; r++) {
    a[r] = (a[r]! * sx) / nx;
    a[4 + r] = (a[4 + r]! * sy) / ny;
    a[8 + r] = (a[8 + r]! / sample.spacing[2]) * 1;
  }
  return {
    data,
    dims: [nx, ny, nz],
    spacing: [(px * sx) / nx, (py * sy) / ny, 1],
    affine: a,
    space: sample.space,
    source: { format: 'array', path: '', description: `synthetic ${nx} x ${ny} x ${nz} from the committed sample`, notes: [] },
  };
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      scan: { type: 'string' },
      synthetic: { type: 'string' },
      weights: { type: 'string' },
      batch: { type: 'string', default: '16' },
      software: { type: 'string' },
      'no-outputs': { type: 'boolean' },
    },
  });
  const batch = Number(v.batch);
  const rss0 = rssMiB();
  let volume: Volume;
  if (v.scan) volume = (await loadScan(v.scan)).volume;
  else {
    const m = /^(\d+)x(\d+)x(\d+)$/.exec(v.synthetic ?? '512x512x600');
    if (!m) throw new Error(`--synthetic wants NXxNYxNZ, got '${v.synthetic}'`);
    volume = await syntheticVolume(Number(m[1]), Number(m[2]), Number(m[3]));
  }
  const volumeMiB = volume.data.byteLength / MiB;
  const rssVolume = rssMiB();
  const gpu = await createGpu({ ...(v.software !== undefined ? { forceSoftware: parseSoftwareOption(v.software) } : {}), driverMessages: benchDriverMessages });
  // The package's default weights (src/node/default-weights.ts) unless --weights names a file.
  const weights = v.weights !== undefined ? { path: v.weights, name: v.weights } : defaultWeights();
  const engine = await TwoStageEngine.load(gpu, openWeights(readFileSync(weights.path), weights.name), { batch });
  let peakDuring = 0;
  const t0 = performance.now();
  const result = await analyzeVolume(engine, volume, {
    onProgress: (p) => {
      peakDuring = Math.max(peakDuring, rssMiB());
      if (process.stderr.isTTY) process.stderr.write(`\r${p.stage} ${p.done}/${p.total}   `);
    },
  });
  const ms = performance.now() - t0;
  let outputsMiB = 0;
  if (!v['no-outputs']) outputsMiB = (await makeOutputFiles(result)).reduce((s, f) => s + f.bytes.length, 0) / MiB;
  engine.destroy();
  const slices = result.report.slices.length;
  const lines = [
    `scan: ${volume.source.description || volume.source.path} (${volume.dims.join(' x ')}, ${volume.data.constructor.name}, ${volumeMiB.toFixed(0)} MiB)`,
    `weights: ${weights.name}`,
    `adapter: ${gpu.adapterName}${gpu.isSoftware ? ' (software)' : ''}; model ${engine.height} x ${engine.width}, batch ${batch}`,
    `analysis: ${slices} slices in ${(ms / 1000).toFixed(1)} s (${((slices * 1000) / ms).toFixed(2)} slices/s)${v['no-outputs'] ? '' : `; output files ${outputsMiB.toFixed(1)} MiB`}`,
    `host memory: RSS at start ${rss0.toFixed(0)} MiB, with the volume ${rssVolume.toFixed(0)} MiB, highest seen during the analysis ${peakDuring.toFixed(0)} MiB, process peak (maxrss) ${maxRssMiB().toFixed(0)} MiB`,
  ];
  console.log(lines.join('\n'));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
