/**
 * What the page shows of a report.json: the patient card's figures, the per-slice series for the chart, the
 * weights' status and the speed. Read from the report itself (the same file the CLI writes and the user
 * downloads), so the page shows nothing the report does not say.
 * @module
 */

/** One slice, in the analysis's axial order (inferior to superior). */
export interface SliceView {
  index: number;
  positionMm: number | null;
  infectedFraction: number | null;
  probs: number[];
  used: boolean;
}

/** The page's reading of a report. */
export interface ReportView {
  classNames: string[];
  patient:
    | {
        found: true;
        label: string;
        probs: number[];
        uncertainty: number;
        lungMl: number;
        infectedMl: number;
        involvementPct: number;
        slicesUsed: number | null;
        /** report 1.2: the temperature the probabilities were calibrated with and the OOD score (null: not in the report or not calibrated). */
        support: { temperature: number; oodScore: number; oodThreshold: number } | null;
      }
    | { found: false; title: string; message: string };
  slices: SliceView[];
  adapter: string;
  slicesPerSec: number | null;
  weightsName: string;
  /** Set when the weights are not trained on real patients: the banner's text. */
  weightsWarning: string | null;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Probabilities in class order from a { class: p } record. */
function probsOf(v: unknown, names: string[]): number[] {
  const o = obj(v);
  return names.map((n) => (typeof o[n] === 'number' ? (o[n] as number) : NaN));
}

/** The calibrated answer's support (report 1.2), when the weights were calibrated. */
function supportOf(v: unknown): { temperature: number; oodScore: number; oodThreshold: number } | null {
  const s = obj(v);
  const t = num(s.temperature);
  const sc = num(s.oodScore);
  const th = num(s.oodThreshold);
  return s.calibrated === true && t !== null && sc !== null && th !== null ? { temperature: t, oodScore: sc, oodThreshold: th } : null;
}

/**
 * Reads the fields the page shows from a report.json (schema covidct-report 1.x, src/analysis/report.ts).
 * @throws Error when the report is not of that schema.
 */
export function readReport(report: unknown): ReportView {
  const r = obj(report);
  if (r.schema !== 'covidct-report' || !String(r.schemaVersion ?? '').startsWith('1.')) throw new Error(`not a covidct-report 1.x (schema ${String(r.schema)} ${String(r.schemaVersion)})`);
  const model = obj(r.model);
  const names = Array.isArray(model.classNames) ? model.classNames.map(String) : [];
  const slices: SliceView[] = (Array.isArray(r.slices) ? r.slices : []).map((s, i) => {
    const o = obj(s);
    return { index: num(o.index) ?? i, positionMm: num(o.positionMm), infectedFraction: num(o.infectedFraction), probs: probsOf(o.probabilities, names), used: o.used !== false };
  });
  const p = obj(r.patient);
  const weights = obj(r.weights);
  const notice = String(weights.notice ?? r.notice ?? '');
  const trainedOn = typeof weights.trainedOn === 'string' ? weights.trainedOn : '';
  let weightsWarning: string | null = null;
  if (weights.trained === false) weightsWarning = `Untrained weights: ${notice}`;
  else if (/synthetic/i.test(trainedOn) || /synthetic/i.test(notice)) weightsWarning = `Weights trained on synthetic data: ${notice}`;
  else if (weights.trained !== true) weightsWarning = `Weights of unknown training: ${notice}`;
  const reasons = obj(p.reasons);
  return {
    classNames: names,
    patient:
      p.lungFound === true && typeof p.label === 'string'
        ? {
            found: true,
            label: p.label,
            probs: probsOf(p.probabilities, names),
            uncertainty: num(p.uncertainty) ?? NaN,
            lungMl: num(p.lungVolumeMl) ?? NaN,
            infectedMl: num(p.infectedVolumeMl) ?? NaN,
            involvementPct: num(p.lungInvolvementPct) ?? NaN,
            slicesUsed: num(p.slicesUsed),
            support: supportOf(p.support),
          }
        : {
            found: false,
            // report 1.1: patient.chest.isChest false = the scan is not a chest CT (no class, no involvement);
            // report 1.2: patient.support.supported false = validation does not support the study (no class);
            // report 1.3: patient.chest.lungsWhole false = the lungs continue beyond the scan (no class)
            title: obj(p.chest).isChest === false ? 'not a chest CT' : obj(p.support).supported === false || obj(p.chest).lungsWhole === false ? 'no class' : 'no result',
            message: String(reasons.label ?? reasons.probabilities ?? 'no lung found: no patient-level result'),
          },
    slices,
    adapter: String(obj(r.adapter).name ?? ''),
    slicesPerSec: num(obj(r.timings).slicesPerSecond),
    weightsName: String(weights.name ?? ''),
    weightsWarning,
  };
}
