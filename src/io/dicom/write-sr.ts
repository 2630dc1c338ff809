/**
 * The analysis's numbers as a DICOM Comprehensive SR (Comprehensive SR Storage 1.2.840.10008.5.1.4.1.1.88.33)
 * following TID 1500 "Measurement Report", as dcmqi and highdicom write it:
 *
 *   CONTAINER Imaging Measurement Report (TID 1500)
 *     language English; observer: the device (covidct, its version); procedure reported: Chest CT
 *     Image Library (TID 1600): one group with modality and Frame of Reference, the source images
 *     Imaging Measurements
 *       Measurement Group (TID 1411) "lung": finding Lung, the SEG's segment 1, the source series,
 *         Volume (mL, sum of segmented voxel volumes), the algorithm (TID 4019)
 *       Measurement Group (TID 1411) "infection": finding Inflammation at Lung, the SEG's segment 2, Volume (mL),
 *         Lung involvement (%), the algorithm
 *       Measurement Group (TID 1501) "patient classification": one probability per class, the label (a code:
 *         SNOMED CT for COVID-19 and community-acquired pneumonia, this package's local code otherwise) or the
 *         text "no class" with the reason, the uncertainty, the algorithm
 *     Qualitative Evaluations: the weights' notice ("trained on synthetic data, not for diagnosis", or what the
 *       weights say) as a Comment
 *
 * Concepts without a standard code (lung involvement, the class probabilities, the patient class) use the local
 * coding scheme 99COVIDCT, described in the Coding Scheme Identification Sequence. The evidence: the source
 * images in Current Requested Procedure Evidence, the SEG in Pertinent Other Evidence.
 * @module
 */
import { writePart10, type NaturalDataset } from './dcmjs.js';
import { codeItem, commonAttributes, dicomDateTime, newUid, type Code, type DicomSource, type Software } from './derived.js';
import { INFECTION_SEGMENT, LUNG_SEGMENT, SEGMENT_CODES, ds, type DerivedObject } from './write-seg.js';

export const COMPREHENSIVE_SR_STORAGE = '1.2.840.10008.5.1.4.1.1.88.33';

/** This package's local coding scheme (a private designator starts with 99, PS3.3 8.2). */
export const LOCAL_SCHEME = '99COVIDCT';

/** The Device Observer UID of covidct (one UID for the software, PS3.16 TID 1004). */
export const DEVICE_OBSERVER_UID = '2.25.256359487117937340981779862063616548385';

const DCM = (value: string, meaning: string): Code => ({ value, scheme: 'DCM', meaning });
const SCT = (value: string, meaning: string): Code => ({ value, scheme: 'SCT', meaning });
const LOCAL = (value: string, meaning: string): Code => ({ value, scheme: LOCAL_SCHEME, meaning });
const UCUM = (value: string, meaning: string): Code => ({ value, scheme: 'UCUM', meaning });

/** Standard codes of known class names (matched without case); other classes get a local code. */
export const CLASS_CODES: Record<string, Code> = {
  'covid-19': SCT('840539006', 'COVID-19'),
  cap: SCT('385093006', 'Community acquired pneumonia'),
  'community-acquired pneumonia': SCT('385093006', 'Community acquired pneumonia'),
};

/** The code of a class name. */
export function classCode(name: string, index: number): Code {
  return CLASS_CODES[name.toLowerCase()] ?? LOCAL(`class-${index}`, name.slice(0, 64));
}

/** The numbers the SR states (the report's patient result and model, as src/analysis/report.ts has them). */
export interface SrFindings {
  lungVolumeMl: number;
  infectedVolumeMl: number;
  lungInvolvementPct: number | null;
  classNames: readonly string[];
  probabilities: Record<string, number> | null;
  label: string | null;
  uncertainty: number | null;
  /** Why there is no label (the report's reason), when label is null. */
  noLabelReason?: string;
  notice: string;
  infectionThreshold: number;
}

/** What {@link makeMeasurementReport} takes. */
export interface SrInput {
  source: DicomSource;
  findings: SrFindings;
  /** The segmentation the measurements refer to. */
  segmentation: Pick<DerivedObject, 'sopClassUID' | 'sopInstanceUID' | 'seriesInstanceUID'>;
  software: Software;
  now?: Date;
  seriesInstanceUID?: string;
  sopInstanceUID?: string;
}

type Item = NaturalDataset;

function item(rel: string | null, valueType: string, name: Code | null, value: NaturalDataset): Item {
  return { ...(rel ? { RelationshipType: rel } : {}), ValueType: valueType, ...(name ? { ConceptNameCodeSequence: [codeItem(name)] } : {}), ...value };
}
const text = (rel: string, name: Code, v: string) => item(rel, 'TEXT', name, { TextValue: v });
const code = (rel: string, name: Code, v: Code) => item(rel, 'CODE', name, { ConceptCodeSequence: [codeItem(v)] });
const uidref = (rel: string, name: Code, v: string) => item(rel, 'UIDREF', name, { UID: v });
const num = (rel: string, name: Code, v: number, unit: Code, children?: Item[]) =>
  item(rel, 'NUM', name, { MeasuredValueSequence: [{ MeasurementUnitsCodeSequence: [codeItem(unit)], NumericValue: ds(v) }], ...(children ? { ContentSequence: children } : {}) });
const container = (rel: string | null, name: Code, children: Item[], template?: string) =>
  item(rel, 'CONTAINER', name, {
    ContinuityOfContent: 'SEPARATE',
    ...(template ? { ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: template }] } : {}),
    ContentSequence: children,
  });

/** TID 4019 Algorithm Identification. */
function algorithm(sw: Software, parameters: string[] = []): Item[] {
  return [
    text('HAS CONCEPT MOD', DCM('111001', 'Algorithm Name'), sw.name),
    text('HAS CONCEPT MOD', DCM('111003', 'Algorithm Version'), sw.version),
    ...parameters.map((p) => text('HAS CONCEPT MOD', DCM('111002', 'Algorithm Parameters'), p)),
  ];
}

/** TID 4108 Tracking Identifier. */
function tracking(label: string): Item[] {
  return [text('HAS OBS CONTEXT', DCM('112039', 'Tracking Identifier'), label), uidref('HAS OBS CONTEXT', DCM('112040', 'Tracking Unique Identifier'), newUid())];
}

/** Builds sr.dcm (see the module comment). */
export async function makeMeasurementReport(inp: SrInput): Promise<DerivedObject> {
  const src = inp.source;
  const f = inp.findings;
  const sw = inp.software;
  const now = inp.now ?? new Date();
  const { date, time } = dicomDateTime(now);
  const sopInstanceUID = inp.sopInstanceUID ?? newUid();
  const seriesInstanceUID = inp.seriesInstanceUID ?? newUid();
  const seg = inp.segmentation;
  const volume = SCT('118565006', 'Volume');
  const mL = UCUM('mL', 'milliliter');
  const method = code('HAS CONCEPT MOD', SCT('370129005', 'Measurement Method'), DCM('126030', 'Sum of segmented voxel volumes'));
  const segmentRef = (n: number) => item('CONTAINS', 'IMAGE', DCM('121191', 'Referenced Segment'), { ReferencedSOPSequence: [{ ReferencedSOPClassUID: seg.sopClassUID, ReferencedSOPInstanceUID: seg.sopInstanceUID, ReferencedSegmentNumber: n }] });
  const sourceSeries = uidref('CONTAINS', DCM('121232', 'Source series for segmentation'), src.seriesUID);

  const lungGroup = container('CONTAINS', DCM('125007', 'Measurement Group'), [
    ...tracking('lung'),
    code('CONTAINS', SCT('276214006', 'Finding category'), SEGMENT_CODES.anatomicalStructure),
    code('CONTAINS', DCM('121071', 'Finding'), SEGMENT_CODES.lung),
    ...algorithm(sw),
    segmentRef(LUNG_SEGMENT),
    sourceSeries,
    num('CONTAINS', volume, f.lungVolumeMl, mL, [method]),
  ], '1411');
  const infectionItems: Item[] = [
    ...tracking('infection'),
    code('CONTAINS', SCT('276214006', 'Finding category'), SEGMENT_CODES.morphologicallyAltered),
    code('CONTAINS', DCM('121071', 'Finding'), SEGMENT_CODES.inflammation),
    code('HAS CONCEPT MOD', SCT('363698007', 'Finding Site'), SEGMENT_CODES.lung),
    ...algorithm(sw, [`infection probability > ${f.infectionThreshold} inside the lung mask`]),
    segmentRef(INFECTION_SEGMENT),
    sourceSeries,
    num('CONTAINS', volume, f.infectedVolumeMl, mL, [method]),
  ];
  if (f.lungInvolvementPct !== null) infectionItems.push(num('CONTAINS', LOCAL('involvement', 'Lung involvement (infected / lung volume)'), f.lungInvolvementPct, UCUM('%', 'percent')));
  const infectionGroup = container('CONTAINS', DCM('125007', 'Measurement Group'), infectionItems, '1411');

  const patientClass = LOCAL('patient-class', 'Patient-level class');
  const classItems: Item[] = [...tracking('patient classification'), ...algorithm(sw)];
  if (f.probabilities) {
    f.classNames.forEach((n, i) => classItems.push(num('CONTAINS', LOCAL(`prob-${i}`, `Probability of ${n}`.slice(0, 64)), f.probabilities![n]!, UCUM('1', 'no units'))));
  }
  if (f.uncertainty !== null) classItems.push(num('CONTAINS', LOCAL('uncertainty', 'Uncertainty (normalised entropy)'), f.uncertainty, UCUM('1', 'no units')));
  if (f.label !== null) classItems.push(code('CONTAINS', patientClass, classCode(f.label, f.classNames.indexOf(f.label))));
  // The reasons of "no class" proper (outside what validation supports, lungs not whole) start with "no class" already.
  else classItems.push(text('CONTAINS', patientClass, !f.noLabelReason ? 'no class' : /^no class\b/.test(f.noLabelReason) ? f.noLabelReason : `no class: ${f.noLabelReason}`));
  const classGroup = container('CONTAINS', DCM('125007', 'Measurement Group'), classItems, '1501');

  const instances = new Map<string, { cls: string; frames: number[] }>();
  for (const s of src.slices) {
    const e = instances.get(s.sopInstanceUID) ?? { cls: s.sopClassUID, frames: [] };
    if (s.frameNumber !== undefined) e.frames.push(s.frameNumber);
    instances.set(s.sopInstanceUID, e);
  }
  const library = container('CONTAINS', DCM('111028', 'Image Library'), [
    container('CONTAINS', DCM('126200', 'Image Library Group'), [
      code('HAS ACQ CONTEXT', DCM('121139', 'Modality'), DCM(src.modality || 'CT', src.modality === 'CT' || !src.modality ? 'Computed Tomography' : src.modality)),
      uidref('HAS ACQ CONTEXT', DCM('112227', 'Frame of Reference UID'), src.frameOfReferenceUID),
      ...[...instances].map(([uid, e]) => item('CONTAINS', 'IMAGE', null, {
        ReferencedSOPSequence: [{ ReferencedSOPClassUID: e.cls, ReferencedSOPInstanceUID: uid, ...(e.frames.length ? { ReferencedFrameNumber: e.frames } : {}) }],
      })),
    ]),
  ], '1600');
  const content: Item[] = [
    code('HAS CONCEPT MOD', DCM('121049', 'Language of Content Item and Descendants'), { value: 'eng', scheme: 'RFC5646', meaning: 'English' }),
    code('HAS OBS CONTEXT', DCM('121005', 'Observer Type'), DCM('121007', 'Device')),
    uidref('HAS OBS CONTEXT', DCM('121012', 'Device Observer UID'), DEVICE_OBSERVER_UID),
    text('HAS OBS CONTEXT', DCM('121013', 'Device Observer Name'), sw.name),
    text('HAS OBS CONTEXT', DCM('121014', 'Device Observer Manufacturer'), sw.name),
    text('HAS OBS CONTEXT', DCM('121015', 'Device Observer Model Name'), `${sw.name} ${sw.version}`),
    code('HAS CONCEPT MOD', DCM('121058', 'Procedure reported'), { value: '24627-2', scheme: 'LN', meaning: 'Chest CT' }),
    library,
    container('CONTAINS', DCM('126010', 'Imaging Measurements'), [lungGroup, infectionGroup, classGroup]),
    container('CONTAINS', { value: 'C0034375', scheme: 'UMLS', meaning: 'Qualitative Evaluations' }, [text('CONTAINS', DCM('121106', 'Comment'), f.notice)]),
  ];
  const root = container(null, DCM('126000', 'Imaging Measurement Report'), content, '1500');
  const hierarchy = (seriesUID: string, refs: { cls: string; uid: string }[]) => ({
    StudyInstanceUID: src.studyUID,
    ReferencedSeriesSequence: [{ SeriesInstanceUID: seriesUID, ReferencedSOPSequence: refs.map((r) => ({ ReferencedSOPClassUID: r.cls, ReferencedSOPInstanceUID: r.uid })) }],
  });
  const dataset: NaturalDataset = {
    ...commonAttributes(src, { sopClassUID: COMPREHENSIVE_SR_STORAGE, sopInstanceUID, seriesInstanceUID, seriesNumber: 902, seriesDescription: `${sw.name} measurement report`, modality: 'SR', software: sw, now }),
    InstanceNumber: 1,
    ContentDate: date,
    ContentTime: time,
    ReferencedPerformedProcedureStepSequence: [],
    CompletionFlag: 'COMPLETE',
    VerificationFlag: 'UNVERIFIED',
    PerformedProcedureCodeSequence: [],
    CurrentRequestedProcedureEvidenceSequence: [hierarchy(src.seriesUID, [...instances].map(([uid, e]) => ({ cls: e.cls, uid })))],
    PertinentOtherEvidenceSequence: [hierarchy(seg.seriesInstanceUID, [{ cls: seg.sopClassUID, uid: seg.sopInstanceUID }])],
    CodingSchemeIdentificationSequence: [{ CodingSchemeDesignator: LOCAL_SCHEME, CodingSchemeName: 'covidct local codes', CodingSchemeResponsibleOrganization: 'covidct' }],
    ...(({ RelationshipType: _r, ...rest }) => rest)(root as Record<string, unknown>),
  };
  return { bytes: await writePart10(dataset), sopClassUID: COMPREHENSIVE_SR_STORAGE, sopInstanceUID, seriesInstanceUID };
}
