/**
 * What a weights file says about itself, for every output: its name, SHA-256, and whether and on what it was
 * trained, read from the file's metadata (weights/README.md), never guessed from its name.
 *
 * Keys read: `covidct.trained_on` (what the weights were trained on, e.g. "synthetic data"),
 * `covidct.intended_use` (a sentence every output repeats, e.g. "trained on synthetic data, not for
 * diagnosis") and `covidct.source` (how the weights were made, e.g. "deterministic random weights, not
 * trained"). Without `covidct.trained_on`, weights whose source says random / not trained are untrained;
 * otherwise what they were trained on is unknown, and the notice says so.
 * @module
 */

/** The weights as a report states them. */
export interface WeightsInfo {
  /** File name or path as given. */
  name: string;
  /** Lowercase hex SHA-256 of the whole file, or null when the file's bytes were not available. */
  sha256: string | null;
  /** true: trained (on `trainedOn`); false: random / untrained; null: the metadata does not say. */
  trained: boolean | null;
  /** `covidct.trained_on`, or null. */
  trainedOn: string | null;
  /** `covidct.source`, or null. */
  source: string | null;
  /** `covidct.intended_use`, or null. */
  intendedUse: string | null;
  /** The one sentence every output shows about these weights. */
  notice: string;
}

/** The notice for random weights. */
export const UNTRAINED_NOTICE = 'untrained (random weights): the numbers show the engine working, not a diagnosis';

/** Reads {@link WeightsInfo} from a weights file's metadata. */
export function weightsInfo(name: string, metadata: Readonly<Record<string, string>>, sha256: string | null): WeightsInfo {
  const get = (k: string) => {
    const v = metadata[k]?.trim();
    return v ? v : null;
  };
  const trainedOn = get('covidct.trained_on');
  const source = get('covidct.source');
  const intendedUse = get('covidct.intended_use');
  const untrained = !trainedOn && source !== null && /\b(random|untrained|not trained)\b/i.test(source);
  const trained = trainedOn ? true : untrained ? false : null;
  let notice: string;
  if (trained === false) notice = UNTRAINED_NOTICE;
  else if (intendedUse) notice = intendedUse;
  else if (trained) notice = `trained on ${trainedOn}, not for diagnosis`;
  else notice = 'the weights do not say what they were trained on (no covidct.trained_on in their metadata): not for diagnosis';
  return { name, sha256, trained, trainedOn, source, intendedUse, notice };
}

/** Lowercase hex SHA-256 of `bytes` with the web-standard crypto.subtle (Node 20 and browsers). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}
