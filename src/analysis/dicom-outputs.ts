/**
 * The DICOM outputs of an analysis of a DICOM series, in memory as `{ name, bytes }` like makeOutputFiles:
 * - `seg.dcm`: DICOM Segmentation of the lung mask and the thresholded infection map (src/io/dicom/write-seg.ts);
 * - `sr.dcm`: Comprehensive SR measurement report, TID 1500 (src/io/dicom/write-sr.ts);
 * - `contact_sheet.dcm`: the contact sheet as a Secondary Capture image (src/io/dicom/write-sc.ts).
 * All three join the source study (its patient, study and clinical-trial attributes copied) as new series.
 * Only a DICOM input has what they need (a study, a series, a Frame of Reference to refer to): see
 * src/io/dicom/derived.ts `dicomSource`. No file system: Node and the browser share this code.
 * @module
 */
import { dicomSource, type DicomSource, type Software } from '../io/dicom/derived.js';
import type { DicomFileSource } from '../io/dicom/read.js';
import type { DicomScan, DicomSeries } from '../io/dicom/series.js';
import { makeSecondaryCapture } from '../io/dicom/write-sc.js';
import { makeSegmentation, type DerivedObject } from '../io/dicom/write-seg.js';
import { makeMeasurementReport } from '../io/dicom/write-sr.js';
import { INFECTION_LEVELS, type AnalysisResult } from './analyze.js';
import { contactSheet, SC_FILE, SEG_FILE, SR_FILE, type OutputFile } from './outputs.js';
import { SOFTWARE_COMMIT, SOFTWARE_VERSION } from './report.js';

export { SC_FILE, SEG_FILE, SR_FILE };

/** One DICOM output: its file name and identity. */
export interface DicomOutputObject extends Omit<DerivedObject, 'bytes'> {
  name: string;
}

/** What {@link makeDicomOutputFiles} returns. */
export interface DicomOutputs {
  files: OutputFile[];
  objects: DicomOutputObject[];
  /** The source study the objects belong to. */
  studyUID: string;
}

/** This package as the equipment and algorithm the DICOM outputs name. */
export function software(): Software {
  return { name: 'covidct', version: SOFTWARE_VERSION, serial: SOFTWARE_COMMIT ?? SOFTWARE_VERSION };
}

/** The DICOM outputs of `result` for its source series `source` (see the module comment). */
export async function makeDicomOutputs(result: AnalysisResult, source: DicomSource, opts: { now?: Date } = {}): Promise<DicomOutputs> {
  const r = result.report;
  const sw = software();
  const now = opts.now ?? new Date();
  const threshold = r.model.thresholds.infection;
  const seg = await makeSegmentation({
    source,
    dims: result.volume.dims,
    lungMask: result.lungMask,
    infection: result.infection,
    infectionLevel: threshold * INFECTION_LEVELS,
    infectionThreshold: threshold,
    software: sw,
    now,
  });
  const p = r.patient;
  const sr = await makeMeasurementReport({
    source,
    segmentation: seg,
    software: sw,
    now,
    findings: {
      lungVolumeMl: p.lungVolumeMl,
      infectedVolumeMl: p.infectedVolumeMl,
      lungInvolvementPct: p.lungInvolvementPct,
      classNames: r.model.classNames,
      probabilities: p.probabilities,
      label: p.label,
      uncertainty: p.uncertainty,
      ...(p.label === null && p.reasons.label ? { noLabelReason: p.reasons.label } : {}),
      notice: r.notice,
      infectionThreshold: threshold,
    },
  });
  const sheet = contactSheet(result);
  const sc = await makeSecondaryCapture({ source, width: sheet.width, height: sheet.height, rgba: sheet.data, description: `covidct contact sheet: the most involved slices; ${r.notice}`, software: sw, now });
  const named: [string, DerivedObject][] = [[SEG_FILE, seg], [SR_FILE, sr], [SC_FILE, sc]];
  return {
    files: named.map(([name, o]) => ({ name, bytes: o.bytes })),
    objects: named.map(([name, { bytes: _b, ...id }]) => ({ name, ...id })),
    studyUID: source.studyUID,
  };
}

/** {@link makeDicomOutputs} for a DICOM series read from files: the source is read from them first. */
export async function makeDicomOutputFiles(result: AnalysisResult, scan: DicomScan, series: DicomSeries, files: DicomFileSource, opts: { now?: Date } = {}): Promise<DicomOutputs> {
  return makeDicomOutputs(result, await dicomSource(scan, series, files), opts);
}
