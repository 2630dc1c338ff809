/**
 * DICOM Part 10 files (PS3.10): a 128-byte preamble, 'DICM', the file meta information (group 0002, always
 * explicit VR little endian, naming the transfer syntax), then the data set: elements (group, element, VR,
 * length, value) in tag order, encoded as the transfer syntax says (implicit or explicit VR, little or big
 * endian, or one raw deflate stream). Pixel data (7FE0,0010) is either native (rows x columns x frames
 * samples of BitsAllocated bits) or encapsulated (a basic offset table and fragments of compressed frames).
 * Enhanced (multi-frame) objects carry per-frame attributes in the Per-Frame and Shared Functional Groups
 * Sequences (PS3.3 C.7.6.16).
 *
 * Parsing is `dicom-parser`'s (synchronous); this module turns its data set into the plain header this package
 * uses and adds what it does not do: the deflated transfer syntax (the data set after the meta group is inflated
 * first, asynchronously, with the platform's DecompressionStream('deflate-raw') through the bounded path of
 * src/io/gzip.ts, then parsed as explicit VR little endian), files without the Part 10 preamble (raw implicit VR
 * little endian, as old archives hold), and errors that name the file.
 * @module
 */
import * as dicomParserNs from 'dicom-parser';
import type { ByteArrayParser, DataSet, Element, ParseDicomOptions } from 'dicom-parser';
import { ScanError } from '../errors.js';
import { inflateRaw } from '../gzip.js';
import { DEFLATED_TS } from './transfer.js';

/** A parsed data set with the transfer syntax it was read with. */
export interface ParsedDicom {
  dataSet: DataSet;
  transferSyntax: string;
  /** False when the file had no Part 10 preamble and meta information (read as implicit VR little endian). */
  part10: boolean;
}

const IMPLICIT_LE = '1.2.840.10008.1.2';

/** dicom-parser is a UMD bundle: its namespace is the default export under some loaders, the module under others. */
export const dicomParser: typeof dicomParserNs =
  (dicomParserNs as unknown as { default?: typeof dicomParserNs }).default ?? dicomParserNs;
type DataSetCtor = new (parser: ByteArrayParser, byteArray: Uint8Array, elements: Record<string, Element>) => DataSet;

function problemOf(e: unknown): string {
  const inner = e && typeof e === 'object' && 'exception' in e ? (e as { exception: unknown }).exception : e;
  const text = inner instanceof Error ? inner.message : String(inner);
  return text.replace(/^dicomParser\.[A-Za-z]+: ?/, '').replace(/^dicomParser:[A-Za-z]+: ?/, '');
}

/**
 * Whether the first bytes of a file can be DICOM: 'DICM' at byte 128 (a Part 10 file), or a data set without
 * the preamble starting with a group 0002 or 0008 tag. What {@link parseDicom} refuses first; a folder scan reads
 * no more of a file that fails it.
 */
export function looksLikeDicom(bytes: Uint8Array): boolean {
  return isPart10(bytes) || looksLikeRawDataSet(bytes);
}

function isPart10(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

function looksLikeRawDataSet(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  const group = bytes[0]! | (bytes[1]! << 8);
  return group === 0x0008 || group === 0x0002;
}

/** The most bytes a deflated data set may inflate to (1 GiB): beyond it the file is refused, never allocated. */
export const MAX_DEFLATED_DATASET_BYTES = 1 << 30;

/**
 * Parses a DICOM file. `header` stops at the pixel data element (its length and position are still known).
 * A deflated file's data set is inflated first (bounded by {@link MAX_DEFLATED_DATASET_BYTES}); everything else
 * is parsed synchronously. Throws ScanError 'malformed' naming `path` for bytes that are not DICOM, are cut
 * short, or whose deflate stream is corrupt or truncated.
 */
export async function parseDicom(bytes: Uint8Array, path: string, header = false): Promise<ParsedDicom> {
  const part10 = isPart10(bytes);
  if (!part10 && !looksLikeRawDataSet(bytes)) throw new ScanError(path, 'not a DICOM file (no DICM prefix at byte 128)', 'malformed');
  const options: ParseDicomOptions = header ? { untilTag: 'x7fe00010' } : {};
  if (!part10) return parsing(path, () => ({ dataSet: dicomParser.parseDicom(bytes, { ...options, TransferSyntaxUID: IMPLICIT_LE }), transferSyntax: IMPLICIT_LE, part10 }));
  const meta = parsing(path, () => dicomParser.readPart10Header(bytes) as DataSet & { position: number });
  const ts = parsing(path, () => (meta.string('x00020010') ?? '').trim());
  if (!ts) throw new ScanError(path, 'no TransferSyntaxUID in the file meta information', 'malformed');
  if (ts !== DEFLATED_TS) return parsing(path, () => ({ dataSet: dicomParser.parseDicom(bytes, options), transferSyntax: ts, part10 }));
  const pos = meta.position;
  const inflated = await inflateDataSet(bytes.subarray(pos), path);
  return parsing(path, () => {
    const full = new Uint8Array(pos + inflated.length);
    full.set(bytes.subarray(0, pos));
    full.set(inflated, pos);
    const stream = new dicomParser.ByteStream(dicomParser.littleEndianByteArrayParser, full, pos);
    const dataSet = new (dicomParser as unknown as { DataSet: DataSetCtor }).DataSet(dicomParser.littleEndianByteArrayParser, full, {});
    dicomParser.parseDicomDataSetExplicit(dataSet, stream, full.length, header ? { untilTag: 'x7fe00010' } : undefined);
    for (const [tag, el] of Object.entries(meta.elements)) dataSet.elements[tag] = el;
    return { dataSet, transferSyntax: ts, part10 };
  });
}

/**
 * The raw deflate stream of a deflated data set, inflated (bounded). PS3.5 A.5 pads an odd-length stream with
 * one trailing 0x00 byte; decompressors that refuse data after the end of the stream (Chromium's, for one) fail
 * on it, so a failure on input ending in 0x00 is retried without that byte, and the first error is the one
 * reported if the retry fails as well.
 */
async function inflateDataSet(deflated: Uint8Array, path: string): Promise<Uint8Array> {
  try {
    return await inflateRaw(deflated, path, MAX_DEFLATED_DATASET_BYTES);
  } catch (e) {
    if (!(e instanceof ScanError) || deflated.length < 2 || deflated[deflated.length - 1] !== 0 || /more than/.test(e.problem)) throw e;
    try {
      return await inflateRaw(deflated.subarray(0, deflated.length - 1), path, MAX_DEFLATED_DATASET_BYTES);
    } catch {
      throw e;
    }
  }
}

/** Runs a synchronous dicom-parser step, turning its exceptions into ScanError 'malformed' naming `path`. */
function parsing<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ScanError) throw e;
    const p = problemOf(e);
    throw new ScanError(path, /overread|overrun|beyond|end of|ran out|past end/i.test(p) ? `truncated or corrupt DICOM file (${p})` : `not a readable DICOM file (${p})`, 'malformed');
  }
}

/**
 * Runs `fn`, turning anything but a ScanError that it throws (dicom-parser reads element values lazily and
 * throws strings for values past the end of a damaged file) into ScanError 'malformed' naming `path`.
 */
export function guarded<T>(path: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ScanError) throw e;
    throw new ScanError(path, `${what} (${problemOf(e)})`, 'malformed');
  }
}

/** The data set of the first item of a sequence element, or undefined. */
export function firstItem(ds: DataSet | undefined, tag: string): DataSet | undefined {
  const el = ds?.elements[tag];
  return el?.items?.[0]?.dataSet;
}

/** The item data sets of a sequence element ([] when absent). */
export function items(ds: DataSet | undefined, tag: string): DataSet[] {
  const el = ds?.elements[tag];
  return (el?.items ?? []).map((i) => i.dataSet).filter((d): d is DataSet => d !== undefined);
}

/** A trimmed string value ('' when absent). */
export function str(ds: DataSet | undefined, tag: string, index?: number): string {
  if (!ds?.elements[tag]) return '';
  return (ds.string(tag, index) ?? '').trim();
}

/** All values of a multi-valued string (e.g. ImageType), trimmed. */
export function strs(ds: DataSet | undefined, tag: string): string[] {
  const s = str(ds, tag);
  return s ? s.split('\\').map((v) => v.trim()) : [];
}

/** Decimal string (DS) values, or undefined when absent or not numbers. */
export function numbers(ds: DataSet | undefined, tag: string): number[] | undefined {
  const s = ds?.elements[tag] ? ds.string(tag) : undefined;
  if (s === undefined) return undefined;
  const vals = s.split('\\').map((v) => Number(v.trim()));
  return vals.length && vals.every((v) => Number.isFinite(v)) && s.trim() !== '' ? vals : undefined;
}

/** An integer string (IS) or a US value, whichever the element holds (implicit VR files lack the VR). */
export function integer(ds: DataSet | undefined, tag: string, vr: 'US' | 'IS'): number | undefined {
  const el: Element | undefined = ds?.elements[tag];
  if (!ds || !el || el.length === 0) return undefined;
  if (vr === 'US') return el.length >= 2 ? ds.uint16(tag) : undefined;
  const v = ds.intString(tag);
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}
