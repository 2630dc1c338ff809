// The DICOM outputs (--dicom): seg.dcm, sr.dcm and contact_sheet.dcm from a real CT series through the built CLI
// (node dist/cli.js, the trained small model), checked by independent tools: dciodvfy (no errors; only the
// warnings docs/cli.md explains), pydicom, the SEG's frames placed by their positions and compared voxel for voxel
// with lung_mask.nii.gz and the thresholded infection map, and with dcm2niix's grid of the source series. Then
// other geometries (a sagittal series, an enhanced multi-frame file) in-process with the CPU stand-in engine, the
// bad uses through the CLI, and the writers' small parts.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode as decodePng } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeVolume } from '../src/analysis/analyze.js';
import { makeDicomOutputFiles, SC_FILE, SEG_FILE, SR_FILE } from '../src/analysis/dicom-outputs.js';
import { makeOutputFiles } from '../src/analysis/outputs.js';
import { runCli } from '../src/cli/cli.js';
import { writePart10 } from '../src/io/dicom/dcmjs.js';
import { newUid } from '../src/io/dicom/derived.js';
import { cielab, ds } from '../src/io/dicom/write-seg.js';
import { loadScan } from '../src/node/scan-path.js';
import { fakeEngine } from './analysis-fake.js';
import { dciodvfy, dcm2niix, placeSeg, pydicomAttrs, readSr, unexplained } from './dicom-check.js';
import { ROOT } from './fixtures.js';

const SCANS = join(ROOT, 'test/fixtures/scans');
const REAL = join(SCANS, 'real/ct_3slice');
const WEIGHTS = join(ROOT, 'weights/trained/synthetic-small.safetensors');

let tmp: string;

function cli(args: string[], env: Record<string, string> = {}): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/cli.js'), ...args], { encoding: 'utf8', cwd: ROOT, timeout: 300_000, env: { ...process.env, ...env } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  execFileSync(process.execPath, ['build.mjs'], { cwd: ROOT, stdio: 'ignore' });
  tmp = mkdtempSync(join(tmpdir(), 'covidct-dicom-out-'));
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('a real CT series: analyze --dicom through the built CLI', () => {
  let out: string;
  let report: any;
  beforeAll(() => {
    out = join(tmp, 'real');
    const r = cli(['analyze', REAL, '--weights', WEIGHTS, '--out', out, '--dicom', '--size', '64', '--quiet']);
    console.log(`covidct analyze ${REAL} --dicom: exit ${r.code}\n${r.out}${r.err}`);
    expect(r.code, r.err).toBe(0);
    report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  }, 300_000);

  it('writes seg.dcm, sr.dcm and contact_sheet.dcm; dciodvfy finds no error in any, and only the warnings docs/cli.md explains', () => {
    for (const name of [SEG_FILE, SR_FILE, SC_FILE]) {
      const v = dciodvfy(join(out, name));
      console.log(`dciodvfy ${name}: ${v.errors.length} error(s), ${v.warnings.length} warning(s)${v.warnings.length ? `:\n  ${[...new Set(v.warnings)].join('\n  ')}` : ''}`);
      expect(v.errors, v.output).toEqual([]);
      expect(unexplained(v.warnings), v.output).toEqual([]);
    }
    expect(dciodvfy(join(out, SEG_FILE)).output).toMatch(/^Segmentation$/m);
    expect(dciodvfy(join(out, SR_FILE)).output).toMatch(/^ComprehensiveSR$/m);
    expect(dciodvfy(join(out, SC_FILE)).output).toMatch(/^SCImage$/m);
  });

  it('the SEG frames, placed by their positions, equal lung_mask.nii.gz and the infection map above 0.5 voxel for voxel; so on dcm2niix\'s grid of the source', () => {
    const ref = dcm2niix(REAL);
    try {
      const p = placeSeg(join(out, SEG_FILE), join(out, 'lung_mask.nii.gz'), join(out, 'infection.nii.gz'), ref.nifti);
      console.log(`SEG placement: ${p.frames} frames, lung ${p.segLungVoxels} / ${p.lungVoxels} voxels, infection ${p.segInfectedVoxels} / ${p.infectedVoxels}, ` +
        `off-grid ${p.maxOffVoxel.toExponential(2)} voxel; dcm2niix grid ${p.refShape?.join(' x ')}: off ${p.refMaxOffVoxel?.toExponential(2)}, mismatches ${p.refLungMismatch}/${p.refInfectionMismatch}`);
      expect(p.frames).toBe(2 * 3);
      expect(p.segments).toEqual([1, 2]);
      expect(p.maxOffVoxel).toBeLessThan(1e-3);
      expect(p.coverage).toEqual({ '1': [1, 1], '2': [1, 1] });
      expect(p.lungVoxels).toBeGreaterThan(1000); // a real test: the lung segment has voxels (the trained model on this scan)
      // The trained model finds no infection in this abdominal scan (the infection segment's placement with voxels
      // in it is checked on the same series with the stand-in engine below).
      expect(p.infectedVoxels).toBe(0);
      expect(report.patient.infectedVolumeMl).toBe(0);
      expect(p.lungMismatch).toBe(0);
      expect(p.infectionMismatch).toBe(0);
      expect(p.segLungVoxels).toBe(report.slices.reduce((s: number, x: { lungVoxels: number }) => s + x.lungVoxels, 0));
      expect(p.refShape).toEqual([512, 512, 3]);
      expect(p.refMaxOffVoxel).toBeLessThan(1e-3);
      expect(p.refCoverage).toEqual({ '1': [1, 1], '2': [1, 1] });
      expect(p.refLungMismatch).toBe(0);
      expect(p.refInfectionMismatch).toBe(0);
    } finally {
      rmSync(ref.dir, { recursive: true, force: true });
    }
  });

  it('each frame references the source instance at its own position; the SEG is in the source study and frame of reference, with new series and instance UIDs', () => {
    const files = readdirSync(REAL).map((f) => join(REAL, f));
    const src = files.map((f) => pydicomAttrs(f, ['SOPInstanceUID', 'ImagePositionPatient', 'StudyInstanceUID', 'SeriesInstanceUID', 'FrameOfReferenceUID', 'PatientName', 'PatientID', 'PatientSex', 'StudyDate', 'AccessionNumber']));
    const byUid = new Map(src.map((s) => [s.SOPInstanceUID!, s]));
    const p = placeSeg(join(out, SEG_FILE), join(out, 'lung_mask.nii.gz'), join(out, 'infection.nii.gz'));
    for (const [uid, pos, frame] of p.frameSources) {
      const s = byUid.get(uid);
      expect(s, `frame references ${uid}`).toBeDefined();
      expect(JSON.parse(s!.ImagePositionPatient!.replace(/'/g, '"')).map(Number)).toEqual(pos);
      expect(frame).toBe(0);
    }
    // both segments reference all three slices
    expect(new Set(p.frameSources.map((f) => f[0])).size).toBe(3);
    const seg = pydicomAttrs(join(out, SEG_FILE), ['SOPClassUID', 'Modality', 'StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID', 'FrameOfReferenceUID', 'PatientName', 'PatientID', 'PatientSex', 'StudyDate', 'AccessionNumber', 'SegmentationType', 'ContentLabel']);
    for (const k of ['StudyInstanceUID', 'FrameOfReferenceUID', 'PatientName', 'PatientID', 'PatientSex', 'StudyDate', 'AccessionNumber'] as const) expect(seg[k], k).toBe(src[0]![k]);
    expect(seg.SOPClassUID).toBe('1.2.840.10008.5.1.4.1.1.66.4');
    expect(seg.Modality).toBe('SEG');
    expect(seg.SegmentationType).toBe('BINARY');
    expect(seg.SeriesInstanceUID).not.toBe(src[0]!.SeriesInstanceUID);
    expect(seg.SeriesInstanceUID).toMatch(/^2\.25\.\d+$/);
    expect(seg.SOPInstanceUID).toMatch(/^2\.25\.\d+$/);
    const py = `import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1], stop_before_pixels=True)
c = lambda s: [str(s[0].CodeValue), str(s[0].CodingSchemeDesignator), str(s[0].CodeMeaning)]
print(json.dumps({'segments': [[int(s.SegmentNumber), str(s.SegmentLabel), c(s.SegmentedPropertyCategoryCodeSequence), c(s.SegmentedPropertyTypeCodeSequence), str(s.SegmentAlgorithmType)] for s in ds.SegmentSequence],
  'refSeries': [[str(r.SeriesInstanceUID), len(r.ReferencedInstanceSequence)] for r in ds.ReferencedSeriesSequence]}))`;
    const seq = JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, join(out, SEG_FILE)], { encoding: 'utf8' }));
    expect(seq.segments).toEqual([
      [1, 'Lung', ['123037004', 'SCT', 'Anatomical Structure'], ['39607008', 'SCT', 'Lung'], 'AUTOMATIC'],
      [2, 'Infection', ['49755003', 'SCT', 'Morphologically Altered Structure'], ['23583003', 'SCT', 'Inflammation'], 'AUTOMATIC'],
    ]);
    expect(seq.refSeries).toEqual([[src[0]!.SeriesInstanceUID, 3]]);
  });

  it('the SR (TID 1500) states the report\'s volumes, involvement, class probabilities and label, the notice and the algorithm, and references the SEG', () => {
    const sr = readSr(join(out, SR_FILE));
    const seg = pydicomAttrs(join(out, SEG_FILE), ['SOPInstanceUID', 'StudyInstanceUID']);
    expect(sr.sopClass).toBe('1.2.840.10008.5.1.4.1.1.88.33');
    expect(sr.study).toBe(seg.StudyInstanceUID);
    expect(sr.patientName).toBe('JANCT000');
    expect([sr.completion, sr.verification]).toEqual(['COMPLETE', 'UNVERIFIED']);
    const root = sr.items[0]!;
    expect(root).toMatchObject({ depth: 0, type: 'CONTAINER', name: ['126000', 'DCM', 'Imaging Measurement Report'], template: '1500' });
    const named = (meaning: string) => sr.items.filter((i) => i.name?.[2] === meaning);
    const p = report.patient;
    expect(named('Volume').map((i) => [i.value, i.unit])).toEqual([[p.lungVolumeMl, 'mL'], [p.infectedVolumeMl, 'mL']]);
    // Not a chest CT: no involvement in report.json (null, with its reason), none in the SR.
    expect(p.lungInvolvementPct).toBeNull();
    expect(named('Lung involvement (infected / lung volume)')).toEqual([]);
    // This abdominal scan is not a chest CT (42 mL of lung-like voxels): no class, the reason in the SR as in
    // report.json, and no class probabilities (the SR of a scan with a class: the next test).
    expect(p.label).toBeNull();
    expect(p.reasons.label).toMatch(/^not a chest CT/);
    expect(named('Patient-level class').map((i) => [i.type, i.value])).toEqual([['TEXT', `no class: ${p.reasons.label}`]]);
    expect(sr.items.filter((i) => /^Probability of /.test(i.name?.[2] ?? ''))).toEqual([]);
    expect(named('Comment').map((i) => i.value)).toEqual([report.notice]);
    expect(report.notice).toMatch(/synthetic/);
    expect(new Set(named('Algorithm Name').map((i) => i.value))).toEqual(new Set(['covidct']));
    expect(new Set(named('Algorithm Version').map((i) => i.value))).toEqual(new Set([report.software.version]));
    expect(named('Referenced Segment').map((i) => i.value)).toEqual([
      ['1.2.840.10008.5.1.4.1.1.66.4', seg.SOPInstanceUID, 1],
      ['1.2.840.10008.5.1.4.1.1.66.4', seg.SOPInstanceUID, 2],
    ]);
    expect(sr.items.filter((i) => i.type === 'CONTAINER' && i.template).map((i) => i.template)).toEqual(['1500', '1600', '1411', '1411', '1501']);
    expect(sr.items.filter((i) => i.type === 'IMAGE' && i.name === null).length).toBe(3); // the image library: the three source slices
  });

  it('the contact sheet as a Secondary Capture: pydicom reads RGB pixels equal to overlays/contact_sheet.png', () => {
    const png = decodePng(readFileSync(join(out, 'overlays/contact_sheet.png')));
    const py = `import sys, pydicom, numpy as np
ds = pydicom.dcmread(sys.argv[1]); a = ds.pixel_array
sys.stdout.buffer.write(np.ascontiguousarray(a, dtype=np.uint8).tobytes())`;
    const rgb = execFileSync('/usr/bin/python3', ['-c', py, join(out, SC_FILE)], { maxBuffer: 64 << 20 });
    const a = pydicomAttrs(join(out, SC_FILE), ['Rows', 'Columns', 'PhotometricInterpretation', 'BurnedInAnnotation', 'Modality', 'StudyInstanceUID']);
    expect([Number(a.Rows), Number(a.Columns), a.PhotometricInterpretation, a.Modality]).toEqual([png.height, png.width, 'RGB', 'OT']);
    expect(rgb.length).toBe(png.width * png.height * 3);
    const ch = png.channels;
    let diff = 0;
    for (let i = 0; i < png.width * png.height; i++) for (let c = 0; c < 3; c++) if (rgb[i * 3 + c] !== png.data[i * ch + c]) diff++;
    expect(diff).toBe(0);
  });
});

describe('other source geometries (in-process, CPU stand-in engine)', () => {
  it.each([
    ['a sagittal series (frames are sagittal slices)', 'dicom/sagittal'],
    ['an enhanced multi-frame CT file (frames reference their frame numbers)', 'dicom/enhanced'],
    ['slices stored in any order (ordered by position, not file)', 'dicom/ordered'],
    ['the real CT series, with infection voxels (the stand-in engine marks some)', 'real/ct_3slice'],
  ])('%s: SEG placed by position equals the masks; dciodvfy: no errors', async (_, rel) => {
    const scan = await loadScan(join(SCANS, rel));
    const r = await analyzeVolume(fakeEngine({ batch: 4, size: 16 }), scan.volume);
    const dir = join(tmp, rel.replace('/', '_'));
    mkdirSync(dir, { recursive: true });
    for (const f of await makeOutputFiles(r)) if (!f.name.includes('/')) writeFileSync(join(dir, f.name), f.bytes);
    const d = await makeDicomOutputFiles(r, scan.dicom!.scan, scan.dicom!.chosen, (p) => Promise.resolve(readFileSync(p)));
    for (const f of d.files) writeFileSync(join(dir, f.name), f.bytes);
    const p = placeSeg(join(dir, SEG_FILE), join(dir, 'lung_mask.nii.gz'), join(dir, 'infection.nii.gz'));
    expect(p.coverage).toEqual({ '1': [1, 1], '2': [1, 1] });
    expect(p.maxOffVoxel).toBeLessThan(1e-3);
    expect([p.lungMismatch, p.infectionMismatch]).toEqual([0, 0]);
    expect(p.lungVoxels).toBeGreaterThan(0);
    if (rel.startsWith('real/')) expect(p.infectedVoxels).toBeGreaterThan(0);
    expect(p.frames).toBe(2 * scan.volume.dims[2]);
    if (rel === 'dicom/enhanced') expect(p.frameSources.map((f) => f[2]).slice(0, scan.volume.dims[2]).sort((a, b) => a - b)).toEqual(Array.from({ length: scan.volume.dims[2] }, (_, i) => i + 1));
    else expect(p.frameSources.every((f) => f[2] === 0)).toBe(true);
    for (const name of [SEG_FILE, SR_FILE, SC_FILE]) {
      const v = dciodvfy(join(dir, name));
      expect(v.errors, `${rel} ${name}: ${v.output}`).toEqual([]);
    }
  });
});

describe('a patient-level class in the SR', () => {
  it('states the class probabilities, the class as SNOMED CT COVID-19, the volumes and the involvement', async () => {
    // The report of a chest CT with a class, made from the stand-in engine's analysis of the real series (which is
    // not a chest CT) by giving it the patient result a chest CT would have: the SR writer's class branch.
    const scan = await loadScan(REAL);
    const r = await analyzeVolume(fakeEngine({ batch: 3, size: 16 }), scan.volume);
    const names = r.report.model.classNames;
    const patient = r.report.patient;
    patient.label = names[0]!;
    patient.probabilities = Object.fromEntries(names.map((n, i) => [n, [0.7, 0.2, 0.1][i]!]));
    patient.uncertainty = 0.73;
    patient.lungInvolvementPct = 12.5;
    patient.reasons = {};
    const dir = join(tmp, 'class');
    mkdirSync(dir, { recursive: true });
    const d = await makeDicomOutputFiles(r, scan.dicom!.scan, scan.dicom!.chosen, (p) => Promise.resolve(readFileSync(p)));
    for (const f of d.files) writeFileSync(join(dir, f.name), f.bytes);
    expect(dciodvfy(join(dir, SR_FILE)).errors).toEqual([]);
    const sr = readSr(join(dir, SR_FILE));
    const named = (meaning: string) => sr.items.filter((i) => i.name?.[2] === meaning);
    expect(named('Patient-level class').map((i) => i.value)).toEqual([['840539006', 'SCT', 'COVID-19']]);
    for (const [n, v] of Object.entries(patient.probabilities)) expect(named(`Probability of ${n}`).map((i) => i.value)).toEqual([v]);
    expect(named('Lung involvement (infected / lung volume)').map((i) => [i.value, i.unit])).toEqual([[12.5, '%']]);
    expect(named('Volume').map((i) => [i.value, i.unit])).toEqual([[patient.lungVolumeMl, 'mL'], [patient.infectedVolumeMl, 'mL']]);
  });
});

describe('no patient-level result', () => {
  it('the SR says "no class" with the reason and gives no probabilities; the SEG still holds the masks', async () => {
    const scan = await loadScan(REAL);
    const r = await analyzeVolume(fakeEngine({ batch: 3, size: 16, pre: { lung_area_threshold: 1.1 } }), scan.volume);
    expect(r.report.patient.label).toBeNull();
    const dir = join(tmp, 'no-class');
    mkdirSync(dir, { recursive: true });
    const d = await makeDicomOutputFiles(r, scan.dicom!.scan, scan.dicom!.chosen, (p) => Promise.resolve(readFileSync(p)));
    for (const f of d.files) writeFileSync(join(dir, f.name), f.bytes);
    expect(dciodvfy(join(dir, SR_FILE)).errors).toEqual([]);
    const sr = readSr(join(dir, SR_FILE));
    const cls = sr.items.filter((i) => i.name?.[2] === 'Patient-level class');
    expect(cls).toEqual([expect.objectContaining({ type: 'TEXT', value: `no class: ${r.report.patient.reasons.label}` })]);
    expect(sr.items.filter((i) => /^Probability of /.test(i.name?.[2] ?? ''))).toEqual([]);
    expect(sr.items.filter((i) => i.name?.[2] === 'Volume').map((i) => i.value)).toEqual([r.report.patient.lungVolumeMl, r.report.patient.infectedVolumeMl]);
    // A reason that is a "no class" already (lungs not whole, outside what validation supports) is not prefixed again.
    const why = 'no class: the lungs continue beyond the scan (its highest slice holds 81 % of the largest lung slice\'s lung: the apices are cut off)';
    const cut = { ...r, report: { ...r.report, patient: { ...r.report.patient, reasons: { ...r.report.patient.reasons, label: why } } } };
    const d2 = await makeDicomOutputFiles(cut, scan.dicom!.scan, scan.dicom!.chosen, (p) => Promise.resolve(readFileSync(p)));
    writeFileSync(join(dir, SR_FILE), d2.files.find((f) => f.name === SR_FILE)!.bytes);
    expect(readSr(join(dir, SR_FILE)).items.filter((i) => i.name?.[2] === 'Patient-level class')).toEqual([expect.objectContaining({ type: 'TEXT', value: why })]);
  });
});

describe('DICOM outputs need DICOM input: through the built CLI', () => {
  it('a NIfTI file with --dicom: one line, exit 3, no output folder', () => {
    const out = join(tmp, 'nifti-dicom');
    const r = cli(['analyze', join(SCANS, 'nifti/int16.nii.gz'), '--dicom', '--out', out]);
    console.log(`covidct analyze int16.nii.gz --dicom: exit ${r.code}: ${r.err.trim()}`);
    expect(r.code).toBe(3);
    expect(r.out).toBe('');
    expect(r.err.trim().split('\n')).toEqual([expect.stringMatching(/^covidct: .*int16\.nii\.gz: DICOM outputs \(--dicom, --store\) need DICOM input, and this is a NIfTI file: /)]);
    expect(existsSync(out)).toBe(false);
  });

  it('bad usage exits 2: --dicom without a scan, --dicom without --out', () => {
    const a = cli(['analyze', '--dicom', '--out', join(tmp, 'x')]);
    expect(a.code).toBe(2);
    expect(a.err.trim()).toBe('covidct: --dicom needs a DICOM scan (a folder, a file or dicomweb:URL)');
    const b = cli(['analyze', REAL, '--dicom']);
    expect(b.code).toBe(2);
    expect(b.err.trim()).toBe('covidct: --dicom writes seg.dcm, sr.dcm and contact_sheet.dcm to the --out folder: give --out DIR (or --store URL)');
  });

  it('batch --dicom: a DICOM study gets its DICOM outputs, a NIfTI study fails with the message and the run goes on', async () => {
    const studies = join(tmp, 'cohort');
    mkdirSync(studies);
    cpSync(join(SCANS, 'dicom/ordered'), join(studies, 'a_dicom'), { recursive: true });
    cpSync(join(SCANS, 'nifti/int16.nii.gz'), join(studies, 'b_nifti.nii.gz'));
    const out = join(tmp, 'cohort-out');
    const io = { out: '', err: '', stdout(t: string) { io.out += t; }, stderr(t: string) { io.err += t; }, stderrIsTTY: false,
      gpu: async () => { const { testGpu } = await import('./gpu.js'); const { gpu, cache } = await testGpu(); return { gpu, cache, owned: false }; } };
    expect(await runCli(['batch', studies, '--out', out, '--weights', WEIGHTS, '--size', '64', '--dicom'], io)).toBe(3);
    expect(io.err).toMatch(/study b_nifti failed: .*b_nifti\.nii\.gz: DICOM outputs \(--dicom, --store\) need DICOM input/);
    expect(readdirSync(join(out, 'a_dicom')).sort()).toEqual(['contact_sheet.dcm', 'infection.nii.gz', 'lung_mask.nii.gz', 'overlays', 'report.json', 'seg.dcm', 'sr.dcm']);
    expect(existsSync(join(out, 'b_nifti'))).toBe(false);
    expect(dciodvfy(join(out, 'a_dicom', SEG_FILE)).errors).toEqual([]);
  }, 300_000);
});

describe('the writers\' parts', () => {
  it('DS values fit 16 characters; CIELab of white and of the lung cyan', () => {
    for (const v of [0.810547, -235.199997, 1 / 3, 123456.789012345, -0.000012345678901, 1e-20]) {
      const s = ds(v);
      expect(s.length).toBeLessThanOrEqual(16);
      expect(Math.abs(Number(s) - v)).toBeLessThanOrEqual(Math.abs(v) * 1e-9 + 1e-30);
    }
    expect(ds(-235.199997)).toBe('-235.199997');
    // sRGB white is L 100, a = b = 0 in D50 CIELab: 65535, 32896, 32896 in DICOM's encoding ((0 + 128) / 255 * 65535)
    const [L, a, b] = cielab([255, 255, 255]);
    expect(L).toBe(65535);
    expect(Math.abs(a - 32896)).toBeLessThanOrEqual(20);
    expect(Math.abs(b - 32896)).toBeLessThanOrEqual(20);
  });

  it('text beyond ASCII is written as UTF-8 and says so (ISO_IR 192); ASCII text names no character set', async () => {
    const write = async (name: string) => {
      const p = join(tmp, `charset-${newUid().slice(-6)}.dcm`);
      writeFileSync(p, await writePart10({ SOPClassUID: '1.2.840.10008.5.1.4.1.1.7', SOPInstanceUID: newUid(), PatientName: name, SpecificCharacterSet: 'ISO_IR 100' }));
      return pydicomAttrs(p, ['PatientName', 'SpecificCharacterSet']);
    };
    expect(await write('Müller^Jörg')).toEqual({ PatientName: 'Müller^Jörg', SpecificCharacterSet: 'ISO_IR 192' });
    expect(await write('Doe^John')).toEqual({ PatientName: 'Doe^John', SpecificCharacterSet: null });
  });
});
