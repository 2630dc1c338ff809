/**
 * Node only: the DICOM outputs of `analyze --dicom` / `batch --dicom` and `--store` (src/analysis/dicom-outputs.ts
 * makes them, src/node/dicomweb.ts stores them). What a scan must be for them is checked right after it is
 * loaded, before any GPU work: only a DICOM series (a folder, a file, or a DICOMweb study or series) has the
 * study, series and Frame of Reference a DICOM SEG and SR refer to.
 * @module
 */
import { readFile } from 'node:fs/promises';
import type { AnalysisResult } from '../analysis/analyze.js';
import { makeDicomOutputs, type DicomOutputs } from '../analysis/dicom-outputs.js';
import { dicomSource } from '../io/dicom/derived.js';
import { ScanError } from '../io/errors.js';
import { storeDicomWeb } from './dicomweb.js';
import type { LoadedScan } from './scan-path.js';

export { authorization, isDicomWeb, loadDicomWeb, parseStoreUrl } from './dicomweb.js';

const KIND_WORDS: Record<string, string> = { nifti: 'a NIfTI file', safetensors: "a safetensors 'hu' tensor", unknown: 'not DICOM' };

/**
 * The maker of the DICOM outputs for `scan`, after checking that the scan can have them (its source series read:
 * instances, Frame of Reference, patient and study attributes). Throws ScanError for input that is not DICOM.
 */
export async function dicomOutputsFor(scan: LoadedScan): Promise<(result: AnalysisResult) => Promise<DicomOutputs>> {
  if (!scan.dicom) {
    throw new ScanError(scan.path, `DICOM outputs (--dicom, --store) need DICOM input, and this is ${KIND_WORDS[scan.kind] ?? scan.kind}: a DICOM SEG and SR refer to the source study, series and frame of reference, which it does not have (lung_mask.nii.gz and infection.nii.gz are its masks)`, 'unusable');
  }
  const files = 'files' in scan && scan.files instanceof Map ? (scan.files as Map<string, Uint8Array>) : (p: string) => readFile(p);
  const source = await dicomSource(scan.dicom.scan, scan.dicom.chosen, files);
  return (result) => makeDicomOutputs(result, source);
}

/** Stores the DICOM outputs with STOW-RS; returns the line that says where, only once the server confirmed every one. */
export async function storeOutputs(target: { base: string; display: string }, made: DicomOutputs): Promise<string> {
  const objects = made.objects.map((o) => ({ ...o, bytes: made.files.find((f) => f.name === o.name)!.bytes }));
  const outcomes = await storeDicomWeb(target, made.studyUID, objects);
  const notes = outcomes.filter((o) => o.note !== 'stored').map((o) => `${o.name}: ${o.note}`);
  return `stored on ${target.display}: ${outcomes.map((o) => o.name).join(', ')} (study ${made.studyUID})${notes.length ? `; ${notes.join('; ')}` : ''}`;
}
