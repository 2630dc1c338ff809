// Independent checks of the DICOM outputs (seg.dcm, sr.dcm, contact_sheet.dcm), shared by the tests: dicom3tools'
// dciodvfy (errors and warnings), pydicom reading the objects, the SEG's frames placed in space by their own Plane
// Position / Orientation and Pixel Measures (never by frame index) and compared voxel for voxel with the NIfTI
// masks, and with the grid dcm2niix makes of the source series.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** dciodvfy's verdict: its Error and Warning lines. */
export function dciodvfy(path: string): { errors: string[]; warnings: string[]; output: string } {
  const r = spawnSync('dciodvfy', [path], { encoding: 'utf8' });
  if (r.error) throw new Error(`dciodvfy cannot run (${r.error.message}): install dicom3tools (scripts/install-deps.sh)`);
  const output = `${r.stdout}${r.stderr}`;
  const lines = output.split('\n').map((l) => l.trim());
  return { errors: lines.filter((l) => /^Error/.test(l)), warnings: lines.filter((l) => /^Warning/.test(l)), output };
}

/**
 * The warnings dciodvfy may give on our objects, each with why it is fine (docs/cli.md lists them too); any other
 * warning fails the tests.
 */
export const EXPLAINED_WARNINGS: [RegExp, string][] = [
  [/Retired Person Name form/, "the source's PatientName is copied as it is (a name without ^ components, as the real fixture's 'JANCT000')"],
  [/Unrecognized defined term <99COVIDCT> for value 1 of attribute <Coding Scheme Designator>/, 'our local coding scheme for concepts without a standard code (lung involvement, class probabilities, the patient class); described in the Coding Scheme Identification Sequence'],
  [/Missing attribute or value that would be needed to build DICOMDIR - (Patient ID|Study Date|Study Time|Study ID)/, "the source has no value for it (a Type 2 attribute copied empty); only a DICOMDIR would need it"],
];

/** Warnings that none of {@link EXPLAINED_WARNINGS} explains. */
export function unexplained(warnings: string[]): string[] {
  return warnings.filter((w) => !EXPLAINED_WARNINGS.some(([re]) => re.test(w)));
}

const PLACE_SEG = `
import json, sys, numpy as np, pydicom, nibabel as nib
seg_path, lung_path, inf_path = sys.argv[1:4]
ref_path = sys.argv[4] if len(sys.argv) > 4 else ''
seg = pydicom.dcmread(seg_path)
frames = seg.pixel_array
if frames.ndim == 2:
    frames = frames[None]
sh = seg.SharedFunctionalGroupsSequence[0]
iop = np.array(sh.PlaneOrientationSequence[0].ImageOrientationPatient, float)
ps = np.array(sh.PixelMeasuresSequence[0].PixelSpacing, float)
rowdir, coldir = iop[:3], iop[3:]
R, C = int(seg.Rows), int(seg.Columns)
rr, cc = np.meshgrid(np.arange(R), np.arange(C), indexing='ij')
segnos = sorted({int(s.SegmentNumber) for s in seg.SegmentSequence})

def place(affine, shape):
    inv = np.linalg.inv(affine)
    cov = {s: np.zeros(shape, np.int32) for s in segnos}
    val = {s: np.zeros(shape, np.uint8) for s in segnos}
    off = 0.0
    for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        s = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ipp = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        lps = ipp[None, None, :] + cc[..., None] * ps[1] * rowdir + rr[..., None] * ps[0] * coldir
        ras = lps * np.array([-1.0, -1.0, 1.0])
        ijk = (np.concatenate([ras, np.ones((R, C, 1))], -1) @ inv.T)[..., :3]
        idx = np.rint(ijk).astype(int)
        off = max(off, float(np.abs(ijk - idx).max()))
        i, j, k = idx[..., 0], idx[..., 1], idx[..., 2]
        inside = (i >= 0) & (i < shape[0]) & (j >= 0) & (j < shape[1]) & (k >= 0) & (k < shape[2])
        if not inside.all():
            raise SystemExit(f'frame {f + 1} (segment {s}) lies outside the grid')
        np.add.at(cov[s], (i, j, k), 1)
        val[s][i, j, k] = frames[f]
    return cov, val, off

lung = nib.load(lung_path)
inf = nib.load(inf_path)
lung_mask = np.asanyarray(lung.dataobj) == 1
inf_mask = inf.get_fdata() > 0.5
cov, val, off = place(lung.affine, lung.shape)
res = {
    'frames': int(frames.shape[0]), 'segments': segnos, 'maxOffVoxel': off,
    'coverage': {str(s): [int(cov[s].min()), int(cov[s].max())] for s in segnos},
    'lungVoxels': int(lung_mask.sum()), 'infectedVoxels': int(inf_mask.sum()),
    'segLungVoxels': int(val[1].astype(bool).sum()), 'segInfectedVoxels': int(val[2].astype(bool).sum()),
    'lungMismatch': int((val[1].astype(bool) != lung_mask).sum()), 'infectionMismatch': int((val[2].astype(bool) != inf_mask).sum()),
    'frameSources': [[str(it.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID),
                      [float(v) for v in it.PlanePositionSequence[0].ImagePositionPatient],
                      int(it.DerivationImageSequence[0].SourceImageSequence[0].get('ReferencedFrameNumber', 0) or 0)]
                     for it in seg.PerFrameFunctionalGroupsSequence],
}
if ref_path:
    ref = nib.load(ref_path)
    shape = ref.shape[:3]
    cov2, val2, off2 = place(ref.affine, shape)
    m = np.linalg.inv(lung.affine) @ ref.affine
    I, J, K = np.meshgrid(*[np.arange(n) for n in shape], indexing='ij')
    ours = (np.stack([I, J, K, np.ones_like(I)], -1) @ m.T)[..., :3]
    oi = np.rint(ours).astype(int)
    res['refShape'] = [int(n) for n in shape]
    res['refMaxOffVoxel'] = max(off2, float(np.abs(ours - oi).max()))
    res['refCoverage'] = {str(s): [int(cov2[s].min()), int(cov2[s].max())] for s in segnos}
    res['refLungMismatch'] = int((val2[1].astype(bool) != lung_mask[oi[..., 0], oi[..., 1], oi[..., 2]]).sum())
    res['refInfectionMismatch'] = int((val2[2].astype(bool) != inf_mask[oi[..., 0], oi[..., 1], oi[..., 2]]).sum())
print(json.dumps(res))
`;

/** What {@link placeSeg} finds. */
export interface SegPlacement {
  frames: number;
  segments: number[];
  /** Largest distance of a frame pixel's position from the nearest voxel centre of the masks' grid, in voxels. */
  maxOffVoxel: number;
  /** Per segment: [min, max] of how many frame pixels landed on each voxel (1, 1: every voxel exactly once). */
  coverage: Record<string, [number, number]>;
  lungVoxels: number;
  infectedVoxels: number;
  segLungVoxels: number;
  segInfectedVoxels: number;
  lungMismatch: number;
  infectionMismatch: number;
  /** Per frame: the referenced source SOP instance, the frame's position, the referenced frame number (0: none). */
  frameSources: [string, [number, number, number], number][];
  refShape?: number[];
  refMaxOffVoxel?: number;
  refCoverage?: Record<string, [number, number]>;
  refLungMismatch?: number;
  refInfectionMismatch?: number;
}

/**
 * Places every SEG frame by its position into the grid of lung_mask.nii.gz (and of `refNifti`, dcm2niix's
 * conversion of the source, when given) with pydicom, nibabel and numpy, and compares with the masks.
 */
export function placeSeg(seg: string, lungMask: string, infection: string, refNifti?: string): SegPlacement {
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', PLACE_SEG, seg, lungMask, infection, ...(refNifti ? [refNifti] : [])], { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

const SR_ITEMS = `
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
out = []
def walk(items, depth):
    for it in items:
        name = it.ConceptNameCodeSequence[0] if 'ConceptNameCodeSequence' in it else None
        e = {'depth': depth, 'rel': str(it.get('RelationshipType', '')), 'type': str(it.ValueType),
             'name': [str(name.CodeValue), str(name.CodingSchemeDesignator), str(name.CodeMeaning)] if name else None}
        if it.ValueType == 'TEXT': e['value'] = str(it.TextValue)
        elif it.ValueType == 'UIDREF': e['value'] = str(it.UID)
        elif it.ValueType == 'CODE':
            c = it.ConceptCodeSequence[0]; e['value'] = [str(c.CodeValue), str(c.CodingSchemeDesignator), str(c.CodeMeaning)]
        elif it.ValueType == 'NUM':
            mv = it.MeasuredValueSequence[0]; u = mv.MeasurementUnitsCodeSequence[0]
            e['value'] = float(mv.NumericValue); e['unit'] = str(u.CodeValue)
        elif it.ValueType == 'IMAGE':
            r = it.ReferencedSOPSequence[0]
            e['value'] = [str(r.ReferencedSOPClassUID), str(r.ReferencedSOPInstanceUID), int(r.get('ReferencedSegmentNumber', 0) or 0)]
        elif it.ValueType == 'CONTAINER' and 'ContentTemplateSequence' in it:
            e['template'] = str(it.ContentTemplateSequence[0].TemplateIdentifier)
        out.append(e)
        if 'ContentSequence' in it: walk(it.ContentSequence, depth + 1)
walk([ds], 0)
print(json.dumps({'sopClass': str(ds.SOPClassUID), 'study': str(ds.StudyInstanceUID), 'series': str(ds.SeriesInstanceUID), 'patientName': str(ds.PatientName),
                  'patientID': str(ds.PatientID), 'completion': str(ds.CompletionFlag), 'verification': str(ds.VerificationFlag), 'items': out}))
`;

/** One content item of an SR as pydicom reads it. */
export interface SrItem {
  depth: number;
  rel: string;
  type: string;
  name: [string, string, string] | null;
  value?: unknown;
  unit?: string;
  template?: string;
}

/** The SR's header and content tree, flattened in document order, read with pydicom. */
export function readSr(path: string): { sopClass: string; study: string; series: string; patientName: string; patientID: string; completion: string; verification: string; items: SrItem[] } {
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', SR_ITEMS, path], { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

/** A DICOM file's attributes as pydicom reads them (keyword -> str(value)), for the given keywords. */
export function pydicomAttrs(path: string, keywords: string[]): Record<string, string> {
  const py = `import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1], stop_before_pixels=True)
print(json.dumps({k: (str(ds.get(k)) if k in ds else None) for k in sys.argv[2:]}))`;
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, path, ...keywords], { encoding: 'utf8' }));
}

/** dcm2niix's conversion of a DICOM folder: the path of its one NIfTI file (in a temporary folder the caller removes). */
export function dcm2niix(folder: string): { nifti: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'covidct-d2n-'));
  execFileSync('dcm2niix', ['-z', 'n', '-b', 'n', '-o', dir, '-f', 'ref', folder], { stdio: 'ignore' });
  const nii = readdirSync(dir).filter((n) => n.endsWith('.nii'));
  if (nii.length !== 1) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`dcm2niix made ${nii.length} NIfTI files of ${folder}: ${nii.join(', ')}`);
  }
  return { nifti: join(dir, nii[0]!), dir };
}
