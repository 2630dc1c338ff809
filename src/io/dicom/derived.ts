/**
 * What the DICOM objects derived from a CT series (SEG, SR, Secondary Capture: write-seg.ts, write-sr.ts,
 * write-sc.ts) take from that series, and what they share:
 * - {@link dicomSource}: the source's identity (study, series, Frame of Reference), each slice's instance (SOP
 *   class and instance UID, frame number for multi-frame files) and position in the order of the analysed
 *   volume's third axis (the order readDicomSeries stacks them in: {@link seriesGeometry}), and the patient, study
 *   and clinical-trial attributes to copy, read with dcmjs from the first file (its character set decoded);
 * - new UIDs (2.25 + a random 128-bit number, PS3.5 B.2), DICOM dates and times, coded concepts;
 * - the modules every derived object repeats: Patient, Clinical Trial Subject, General Study, Patient Study
 *   (copied), General Equipment and SOP Common (ours).
 * No file system: the caller passes the files' bytes (a Map) or a loader, as for readDicomSeries.
 * @module
 */
import { ScanError } from '../errors.js';
import { readAttributes, type NaturalDataset } from './dcmjs.js';
import { seriesGeometry, type DicomFileSource } from './read.js';
import type { DicomScan, DicomSeries } from './series.js';

/** A coded concept (PS3.3 8.8): value, coding scheme designator, meaning. */
export interface Code {
  value: string;
  scheme: string;
  meaning: string;
}

/** A code as a Code Sequence item. */
export function codeItem(c: Code): NaturalDataset {
  return { CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning };
}

/** One source slice: the instance (and frame) it is, and where it lies. */
export interface SourceSlice {
  sopClassUID: string;
  sopInstanceUID: string;
  /** 1-based frame number inside a multi-frame instance; undefined for single-frame instances. */
  frameNumber?: number;
  /** ImagePositionPatient of the slice (LPS mm), as the source states it. */
  position: [number, number, number];
}

/** What the derived objects need of the analysed series. */
export interface DicomSource {
  studyUID: string;
  seriesUID: string;
  frameOfReferenceUID: string;
  modality: string;
  seriesDescription: string;
  rows: number;
  columns: number;
  /** ImageOrientationPatient shared by every slice (row direction, then column direction, LPS). */
  orientation: [number, number, number, number, number, number];
  /** PixelSpacing [between rows, between columns], mm. */
  pixelSpacing: [number, number];
  /** Distance between neighbouring slices along the normal, mm (from the positions). */
  spacingBetweenSlices: number;
  /** SliceThickness of the source when stated. */
  sliceThickness?: number;
  /** PositionReferenceIndicator of the source's Frame of Reference ('' when absent). */
  positionReferenceIndicator: string;
  /** The slices in the order of the analysed volume's third axis (k = 0, 1, ...). */
  slices: SourceSlice[];
  /** Patient, clinical trial and study attributes of the source, naturalized (keyword -> value), to copy. */
  copied: NaturalDataset;
}

/** Patient (C.7.1.1), Clinical Trial Subject (C.7.1.3), General Study (C.7.2.1) and Patient Study (C.7.2.2) attributes copied from the source. */
export const COPIED_KEYWORDS = [
  // Patient
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'IssuerOfPatientIDQualifiersSequence', 'TypeOfPatientID', 'PatientBirthDate', 'PatientBirthTime', 'PatientSex',
  'OtherPatientIDsSequence', 'OtherPatientNames', 'PatientComments', 'PatientSpeciesDescription', 'PatientSpeciesCodeSequence', 'PatientBreedDescription',
  'PatientBreedCodeSequence', 'BreedRegistrationSequence', 'ResponsiblePerson', 'ResponsiblePersonRole', 'ResponsibleOrganization', 'PatientIdentityRemoved',
  'DeidentificationMethod', 'DeidentificationMethodCodeSequence', 'QualityControlSubject', 'StrainDescription',
  // Clinical Trial Subject
  'ClinicalTrialSponsorName', 'ClinicalTrialProtocolID', 'ClinicalTrialProtocolName', 'IssuerOfClinicalTrialProtocolID', 'OtherClinicalTrialProtocolIDsSequence',
  'ClinicalTrialSiteID', 'ClinicalTrialSiteName', 'IssuerOfClinicalTrialSiteID', 'ClinicalTrialSubjectID', 'IssuerOfClinicalTrialSubjectID',
  'ClinicalTrialSubjectReadingID', 'IssuerOfClinicalTrialSubjectReadingID', 'ClinicalTrialProtocolEthicsCommitteeName', 'ClinicalTrialProtocolEthicsCommitteeApprovalNumber',
  // General Study
  'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'ReferringPhysicianIdentificationSequence', 'ConsultingPhysicianName', 'StudyID', 'AccessionNumber',
  'IssuerOfAccessionNumberSequence', 'StudyDescription', 'ProcedureCodeSequence', 'PhysiciansOfRecord', 'NameOfPhysiciansReadingStudy',
  'ReferencedStudySequence', 'RequestingService', 'ReasonForPerformedProcedureCodeSequence',
  // Patient Study
  'AdmittingDiagnosesDescription', 'PatientAge', 'PatientSize', 'PatientWeight', 'PatientBodyMassIndex', 'Occupation', 'AdditionalPatientHistory',
  'PregnancyStatus', 'SmokingStatus', 'PatientSexNeutered',
  // the character set the copied text is in (dcmjs re-encodes it as UTF-8 and says so)
  'SpecificCharacterSet',
] as const;

/** Type 2 attributes of those modules: written empty when the source lacks them. */
const TYPE2_EMPTY = ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyDate', 'StudyTime', 'ReferringPhysicianName', 'StudyID', 'AccessionNumber'] as const;

async function load(files: DicomFileSource, path: string): Promise<Uint8Array> {
  if (typeof files === 'function') return files(path);
  const b = files.get(path);
  if (!b) throw new ScanError(path, 'file not given to the reader', 'malformed');
  return b;
}

/**
 * What derived objects need of `series` (see {@link DicomSource}): the slices in the order readDicomSeries stacks
 * them (its geometry, the first instance at each position), and the attributes copied from the first slice's
 * file. Throws ScanError when the series cannot be referenced: an instance without SOPInstanceUID, no (or
 * different) FrameOfReferenceUID, or a first file dcmjs cannot read.
 */
export async function dicomSource(scan: DicomScan, series: DicomSeries, files: DicomFileSource): Promise<DicomSource> {
  const geom = seriesGeometry(series, scan.root);
  const first = geom.slices[0]![0]!;
  const h0 = first.header;
  const frameOfReferenceUID = h0.frameOfReferenceUID;
  if (!frameOfReferenceUID) throw new ScanError(first.path, 'no FrameOfReferenceUID: a DICOM SEG must lie in the source frame of reference', 'unusable');
  const slices: SourceSlice[] = geom.slices.map((group) => {
    const inst = group[0]!;
    const h = inst.header;
    if (!h.sopInstanceUID) throw new ScanError(inst.path, 'no SOPInstanceUID: the DICOM outputs cannot reference this slice', 'unusable');
    if (!h.sopClassUID) throw new ScanError(inst.path, 'no SOPClassUID: the DICOM outputs cannot reference this slice', 'unusable');
    if (h.frameOfReferenceUID !== frameOfReferenceUID) {
      throw new ScanError(inst.path, `FrameOfReferenceUID ${h.frameOfReferenceUID || '(none)'} differs from ${frameOfReferenceUID} of ${first.path}: the series has no single frame of reference`, 'unusable');
    }
    const s: SourceSlice = { sopClassUID: h.sopClassUID, sopInstanceUID: h.sopInstanceUID, position: inst.position! };
    if (h.frames > 1) s.frameNumber = inst.frame + 1;
    return s;
  });
  let attrs: NaturalDataset;
  try {
    attrs = await readAttributes(await load(files, first.path));
  } catch (e) {
    if (e instanceof ScanError) throw e;
    throw new ScanError(first.path, `its patient and study attributes cannot be read for the DICOM outputs (${e instanceof Error ? e.message : String(e)})`, 'malformed');
  }
  const copied: NaturalDataset = {};
  for (const k of COPIED_KEYWORDS) if (attrs[k] !== undefined) copied[k] = attrs[k];
  for (const k of TYPE2_EMPTY) if (copied[k] === undefined) copied[k] = '';
  const o = first.orientation!;
  const src: DicomSource = {
    studyUID: h0.studyUID,
    seriesUID: h0.seriesUID,
    frameOfReferenceUID,
    modality: h0.modality || 'CT',
    seriesDescription: h0.seriesDescription,
    rows: series.rows,
    columns: series.columns,
    orientation: [o[0], o[1], o[2], o[3], o[4], o[5]],
    pixelSpacing: [first.pixelSpacing![0], first.pixelSpacing![1]],
    spacingBetweenSlices: geom.spacing[2],
    slices,
    copied,
    positionReferenceIndicator: typeof attrs.PositionReferenceIndicator === 'string' ? attrs.PositionReferenceIndicator : '',
  };
  if (!src.studyUID) throw new ScanError(first.path, 'no StudyInstanceUID: the DICOM outputs must belong to the source study', 'unusable');
  const thickness = Number(attrs.SliceThickness);
  if (attrs.SliceThickness !== undefined && attrs.SliceThickness !== '' && thickness > 0) src.sliceThickness = thickness;
  return src;
}

/** A new UID: 2.25 followed by a random 128-bit number in decimal (PS3.5 B.2, ISO/IEC 9834-8). */
export function newUid(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6]! & 0x0f) | 0x40; // a version-4 UUID, as PS3.5 B.2 describes
  b[8] = (b[8]! & 0x3f) | 0x80;
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return `2.25.${n.toString()}`;
}

/** DICOM DA (YYYYMMDD) and TM (HHMMSS.FFFFFF) of a local time. */
export function dicomDateTime(d: Date): { date: string; time: string } {
  const p = (v: number, n = 2) => String(v).padStart(n, '0');
  return {
    date: `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}`,
    time: `${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}000`,
  };
}

/** Who made a derived object (General Equipment and Enhanced General Equipment, the algorithm's identity). */
export interface Software {
  name: string;
  version: string;
  /** What Device Serial Number states (Enhanced General Equipment needs one): the build's commit, else the version. */
  serial?: string;
}

/** The manufacturer this package states in the equipment modules. */
export const MANUFACTURER = 'covidct';

/**
 * The attributes every derived object starts with: copied patient, clinical trial and study attributes, the
 * new series and instance, the General Equipment and Enhanced General Equipment modules, SOP Common.
 */
export function commonAttributes(src: DicomSource, o: { sopClassUID: string; sopInstanceUID: string; seriesInstanceUID: string; seriesNumber: number; seriesDescription: string; modality: string; software: Software; now: Date }): NaturalDataset {
  const { date, time } = dicomDateTime(o.now);
  return {
    ...src.copied,
    SOPClassUID: o.sopClassUID,
    SOPInstanceUID: o.sopInstanceUID,
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    StudyInstanceUID: src.studyUID,
    SeriesInstanceUID: o.seriesInstanceUID,
    SeriesNumber: o.seriesNumber,
    SeriesDescription: o.seriesDescription,
    SeriesDate: date,
    SeriesTime: time,
    Modality: o.modality,
    Manufacturer: MANUFACTURER,
    ManufacturerModelName: o.software.name,
    DeviceSerialNumber: o.software.serial ?? o.software.version,
    SoftwareVersions: o.software.version,
  };
}

/** The source series as a Referenced Series item (SeriesInstanceUID, every referenced instance once). */
export function referencedSeriesItem(src: DicomSource): NaturalDataset {
  const seen = new Map<string, string>();
  for (const s of src.slices) seen.set(s.sopInstanceUID, s.sopClassUID);
  return {
    SeriesInstanceUID: src.seriesUID,
    ReferencedInstanceSequence: [...seen].map(([uid, cls]) => ({ ReferencedSOPClassUID: cls, ReferencedSOPInstanceUID: uid })),
  };
}
