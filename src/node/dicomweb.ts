/**
 * DICOMweb (PS3.18) in and out, with Node's fetch (http and https as it does them):
 * - in: `dicomweb:http://host:port/dicom-web/studies/<StudyUID>[/series/<SeriesUID>]` (or https: Node's own CA
 *   certificates, plus those NODE_EXTRA_CA_CERTS names). QIDO-RS lists the study's
 *   series (`GET {base}/studies/{study}/series`); WADO-RS retrieves the series that can be chosen (the one in the
 *   URL; or the one `--series` names; or every CT series) as multipart/related application/dicom, in the
 *   transfer syntax the server holds (`transfer-syntax=*`; a server that refuses it is asked again for its
 *   default). The retrieved instances are then grouped and chosen exactly as a folder's files are
 *   (src/io/dicom/series.ts: the CT series with the most slices, localizers apart, or `--series`), and read
 *   into a Volume. They stay in memory (no temporary files): about the size of the series retrieved.
 * - out: `--store URL` (the DICOMweb base, `http://host:port/dicom-web`): STOW-RS `POST {base}/studies` of the
 *   DICOM outputs in one multipart/related request. Each object counts as stored only when the server's response
 *   lists it in its Referenced SOP Sequence (not in the Failed SOP Sequence), or, when the response says nothing
 *   about it, a QIDO-RS query finds it on the server; anything else is reported as not stored.
 *
 * Credentials: the environment variable COVIDCT_DICOMWEB_AUTH, `basic USER:PASSWORD` (or `basic BASE64`) or
 * `bearer TOKEN`, sent as the Authorization header; never printed, never written to a report. Credentials in the
 * URL itself are refused (they would end up in logs and report.json).
 *
 * Errors are {@link DicomWebError}: one line naming the server (its URL without credentials) and the problem;
 * `stage` says whether retrieving or storing failed, `notFound` marks a study or series the server does not have.
 * @module
 */
import { MIN_SLICES } from '../analysis/analyze.js';
import { axialGrid } from '../analysis/grid.js';
import { ScanError } from '../io/errors.js';
import { chooseSeries, readDicomSeries, scanDicomFiles } from '../io/dicom/index.js';
import { parseDicom, str } from '../io/dicom/parse.js';
import type { LoadedScan } from './scan-path.js';

/** The environment variable holding the DICOMweb credentials. */
export const AUTH_ENV = 'COVIDCT_DICOMWEB_AUTH';
/** The prefix of a DICOMweb scan argument. */
export const DICOMWEB_PREFIX = 'dicomweb:';
/** Per-request limit (connecting, and the whole answer of a retrieve or a store), ms. */
export const REQUEST_TIMEOUT_MS = 300_000;

/** A DICOMweb request that failed; see the module comment. */
export class DicomWebError extends Error {
  override name = 'DicomWebError';
  constructor(
    /** The server or resource, without credentials. */
    readonly url: string,
    readonly problem: string,
    /** 'config': the URL or the credentials variable is wrong (bad usage); 'retrieve' or 'store': the server failed. */
    readonly stage: 'config' | 'retrieve' | 'store',
    /** The study or series is not on the server (bad input). */
    readonly notFound = false,
  ) {
    super(`${url}: ${problem}`);
  }
}

/** Whether a scan argument names a DICOMweb study or series. */
export function isDicomWeb(arg: string): boolean {
  return arg.toLowerCase().startsWith(DICOMWEB_PREFIX);
}

const UID = /^[0-9]+(\.[0-9]+)*$/;

/** A DICOMweb study or series. */
export interface DicomWebTarget {
  /** The service base (e.g. http://host:8042/dicom-web), no trailing slash. */
  base: string;
  study: string;
  series?: string;
  /** `dicomweb:` + the URL as given, for messages and report.json (it never holds credentials). */
  display: string;
}

function parseHttpUrl(raw: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DicomWebError(raw, `not a URL (${what} must look like http://host:port/dicom-web${what === 'the scan' ? '/studies/<StudyUID>' : ''})`, 'config');
  }
  if (url.username || url.password) {
    url.username = '';
    url.password = '';
    throw new DicomWebError(url.href, `credentials in the URL are not accepted (they would show in logs and in report.json): put them in ${AUTH_ENV} ('basic USER:PASSWORD' or 'bearer TOKEN')`, 'config');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DicomWebError(raw, `${url.protocol} is not http: or https:`, 'config');
  if (url.search || url.hash) throw new DicomWebError(raw, 'a DICOMweb URL here takes no query or fragment', 'config');
  return url;
}

/** Parses `dicomweb:http(s)://host[:port]/<base>/studies/<StudyUID>[/series/<SeriesUID>]`. */
export function parseDicomWebUrl(arg: string): DicomWebTarget {
  const raw = arg.slice(DICOMWEB_PREFIX.length);
  const url = parseHttpUrl(raw, 'the scan');
  const m = /^(.*?)\/studies\/([^/]+)(?:\/series\/([^/]+))?\/?$/.exec(url.pathname);
  if (!m) throw new DicomWebError(arg, 'expected dicomweb:http://host:port/<dicom-web base>/studies/<StudyInstanceUID>[/series/<SeriesInstanceUID>]', 'config');
  const study = decodeURIComponent(m[2]!);
  const series = m[3] !== undefined ? decodeURIComponent(m[3]) : undefined;
  for (const [what, uid] of [['StudyInstanceUID', study], ['SeriesInstanceUID', series]] as const) {
    if (uid !== undefined && (!UID.test(uid) || uid.length > 64)) throw new DicomWebError(arg, `'${uid}' is not a ${what} (digits and dots, at most 64 characters)`, 'config');
  }
  const t: DicomWebTarget = { base: `${url.origin}${m[1]}`, study, display: `${DICOMWEB_PREFIX}${url.href}` };
  if (series !== undefined) t.series = series;
  return t;
}

/** Parses `--store URL`: the DICOMweb base (a trailing /studies is dropped; `dicomweb:` may precede it). */
export function parseStoreUrl(arg: string): { base: string; display: string } {
  const raw = isDicomWeb(arg) ? arg.slice(DICOMWEB_PREFIX.length) : arg;
  const url = parseHttpUrl(raw, '--store');
  const path = url.pathname.replace(/\/+$/, '').replace(/\/studies$/, '');
  const base = `${url.origin}${path}`;
  return { base, display: base };
}

/**
 * The Authorization header from COVIDCT_DICOMWEB_AUTH (see the module comment), or undefined when it is not set.
 * A malformed value is refused without showing it.
 */
export function authorization(env: Record<string, string | undefined> = process.env): string | undefined {
  const raw = env[AUTH_ENV];
  if (raw === undefined || raw.trim() === '') return undefined;
  const m = /^\s*(basic|bearer)\s+(\S(?:.*\S)?)\s*$/i.exec(raw);
  if (!m) throw new DicomWebError(AUTH_ENV, `must be 'basic USER:PASSWORD', 'basic BASE64' or 'bearer TOKEN' (its value is not shown)`, 'config');
  const scheme = m[1]!.toLowerCase();
  const value = m[2]!;
  if (scheme === 'bearer') return `Bearer ${value}`;
  if (value.includes(':')) return `Basic ${Buffer.from(value, 'utf8').toString('base64')}`;
  return `Basic ${value}`;
}

/** Why a fetch failed, in words (Node's fetch wraps the socket error in `cause`). */
function networkProblem(e: unknown, timeoutMs: number): string {
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return `no answer within ${Math.round(timeoutMs / 1000)} s`;
  const code = err?.cause?.code;
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host name lookup failed',
    ECONNRESET: 'connection reset by the server',
    ETIMEDOUT: 'connection timed out',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
    UND_ERR_SOCKET: 'connection closed by the server',
    DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed and not trusted (NODE_EXTRA_CA_CERTS=ca.pem adds a CA to trust)",
    SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate chain ends in an untrusted CA (NODE_EXTRA_CA_CERTS=ca.pem adds a CA to trust)",
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate cannot be verified (NODE_EXTRA_CA_CERTS=ca.pem adds a CA to trust)",
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the server's certificate is issued by an unknown CA (NODE_EXTRA_CA_CERTS=ca.pem adds a CA to trust)",
    CERT_HAS_EXPIRED: "the server's certificate has expired",
    ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate is not for this host name",
  };
  if (code && words[code]) return words[code]!;
  return (err?.cause?.message ?? err?.message ?? String(e)).replace(/\s+/g, ' ');
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 406: 'Not Acceptable', 409: 'Conflict',
  413: 'Payload Too Large', 415: 'Unsupported Media Type', 500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** 'HTTP 404 Not Found' and, when the body says something short, what it says. */
function statusProblem(status: number, statusText: string, body: string): string {
  let detail = '';
  const b = body.trim();
  if (b) {
    try {
      const j = JSON.parse(b) as { Message?: string; Details?: string; message?: string; error?: string };
      detail = [j.Message ?? j.message ?? j.error, j.Details].filter(Boolean).join(': ');
    } catch {
      detail = b.startsWith('<') ? '' : b;
    }
  }
  detail = detail.replace(/\s+/g, ' ').slice(0, 200);
  return `HTTP ${status} ${statusText || STATUS_TEXT[status] || ''}`.trim() + (detail ? ` (${detail})` : '');
}

async function httpProblem(res: Response): Promise<string> {
  return statusProblem(res.status, res.statusText, await res.text().catch(() => ''));
}

/** One request: the network failure or an authentication refusal becomes a DicomWebError; other statuses are the caller's. */
async function request(url: string, init: RequestInit, where: string, stage: 'retrieve' | 'store', timeoutMs = REQUEST_TIMEOUT_MS): Promise<Response> {
  const auth = authorization();
  const headers = new Headers(init.headers);
  if (auth) headers.set('Authorization', auth);
  let res: Response;
  try {
    res = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new DicomWebError(where, `cannot reach the DICOMweb server (${networkProblem(e, timeoutMs)})`, stage);
  }
  if (res.status === 401 || res.status === 403) {
    const p = await httpProblem(res);
    throw new DicomWebError(where, `the server refused access (${p})${auth ? `: check the credentials in ${AUTH_ENV}` : `: set ${AUTH_ENV} ('basic USER:PASSWORD' or 'bearer TOKEN')`}`, stage);
  }
  return res;
}

/** A series as QIDO-RS lists it. */
export interface QidoSeries {
  uid: string;
  modality: string;
  instances: number | null;
  number: number | null;
  description: string;
}

type DicomJson = Record<string, { vr?: string; Value?: unknown[] }>;

function jsonValue(o: DicomJson, tag: string): unknown {
  return o[tag]?.Value?.[0];
}

async function readJsonArray(res: Response, where: string, stage: 'retrieve' | 'store'): Promise<DicomJson[]> {
  if (res.status === 204) return [];
  const text = await res.text();
  if (!text.trim()) return [];
  try {
    const j = JSON.parse(text);
    if (Array.isArray(j)) return j as DicomJson[];
  } catch {
    /* below */
  }
  throw new DicomWebError(where, `the server's QIDO-RS answer is not a DICOM JSON array (content type ${res.headers.get('content-type') ?? 'none'})`, stage);
}

/** QIDO-RS: the series of a study ([] when the server has no such study). */
export async function searchSeries(base: string, study: string, stage: 'retrieve' | 'store' = 'retrieve', seriesUID?: string): Promise<QidoSeries[]> {
  const url = `${base}/studies/${study}/series${seriesUID ? `?SeriesInstanceUID=${seriesUID}` : ''}`;
  const res = await request(url, { headers: { Accept: 'application/dicom+json' } }, base, stage);
  if (res.status === 404) return [];
  if (!res.ok) throw new DicomWebError(base, `QIDO-RS search for the series of study ${study} failed: ${await httpProblem(res)}`, stage);
  return (await readJsonArray(res, base, stage)).map((o) => {
    const n = Number(jsonValue(o, '00201209'));
    const sn = Number(jsonValue(o, '00200011'));
    return {
      uid: String(jsonValue(o, '0020000E') ?? ''),
      modality: String(jsonValue(o, '00080060') ?? ''),
      instances: Number.isFinite(n) && jsonValue(o, '00201209') !== undefined ? n : null,
      number: Number.isFinite(sn) && jsonValue(o, '00200011') !== undefined ? sn : null,
      description: String(jsonValue(o, '0008103E') ?? ''),
    };
  });
}

/** QIDO-RS: whether the server has an instance. */
export async function hasInstance(base: string, study: string, series: string, sopInstanceUID: string, stage: 'retrieve' | 'store' = 'store'): Promise<boolean> {
  const res = await request(`${base}/studies/${study}/series/${series}/instances?SOPInstanceUID=${sopInstanceUID}`, { headers: { Accept: 'application/dicom+json' } }, base, stage);
  if (res.status === 404) return false;
  if (!res.ok) throw new DicomWebError(base, `QIDO-RS search for instance ${sopInstanceUID} failed: ${await httpProblem(res)}`, stage);
  return (await readJsonArray(res, base, stage)).some((o) => String(jsonValue(o, '00080018') ?? '') === sopInstanceUID);
}

/** The parameter `name` of a Content-Type header (quoted or not). */
function contentTypeParam(ct: string, name: string): string | undefined {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]*))`, 'i').exec(ct);
  return m ? (m[1] ?? m[2]) : undefined;
}

/**
 * The bodies of a multipart/related message (RFC 2046 5.1), each checked to be application/dicom when its part
 * says what it is. Views into `bytes`, no copies.
 */
export function parseMultipart(bytes: Uint8Array, contentType: string, where: string): Uint8Array[] {
  if (!/^multipart\/related/i.test(contentType.trim())) throw new DicomWebError(where, `expected a multipart/related answer, got ${contentType || 'no content type'}`, 'retrieve');
  const boundary = contentTypeParam(contentType, 'boundary');
  if (!boundary) throw new DicomWebError(where, 'multipart answer without a boundary', 'retrieve');
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const delim = Buffer.from(`--${boundary}`, 'latin1');
  const parts: Uint8Array[] = [];
  let at = buf.indexOf(delim);
  if (at < 0) throw new DicomWebError(where, 'multipart answer without its boundary', 'retrieve');
  for (;;) {
    let p = at + delim.length;
    if (buf[p] === 0x2d && buf[p + 1] === 0x2d) break; // the closing delimiter
    if (buf[p] === 0x0d && buf[p + 1] === 0x0a) p += 2;
    else if (buf[p] === 0x0a) p += 1;
    const headerEnd = buf.indexOf('\r\n\r\n', p, 'latin1');
    if (headerEnd < 0) throw new DicomWebError(where, `part ${parts.length + 1} of the multipart answer is cut short (no end of its headers)`, 'retrieve');
    const headers = buf.subarray(p, headerEnd).toString('latin1');
    const bodyStart = headerEnd + 4;
    const next = buf.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), bodyStart);
    if (next < 0) throw new DicomWebError(where, `part ${parts.length + 1} of the multipart answer is cut short (no closing boundary)`, 'retrieve');
    const type = /^content-type:\s*([^\r\n;]+)/im.exec(headers)?.[1]?.trim().toLowerCase();
    if (type && type !== 'application/dicom') throw new DicomWebError(where, `part ${parts.length + 1} is ${type}, not application/dicom`, 'retrieve');
    parts.push(bytes.subarray(bodyStart, next));
    at = next + 2;
  }
  return parts;
}

/** WADO-RS: every instance of a series, as the server holds them (or in its default transfer syntax). */
export async function retrieveSeries(base: string, study: string, series: string): Promise<Uint8Array[]> {
  const url = `${base}/studies/${study}/series/${series}`;
  const accepts = ['multipart/related; type="application/dicom"; transfer-syntax=*', 'multipart/related; type="application/dicom"'];
  for (let i = 0; i < accepts.length; i++) {
    const res = await request(url, { headers: { Accept: accepts[i]! } }, base, 'retrieve');
    if ((res.status === 406 || res.status === 400 || res.status === 415) && i + 1 < accepts.length) {
      await res.arrayBuffer().catch(() => undefined);
      continue;
    }
    if (res.status === 404) throw new DicomWebError(base, `series ${series} of study ${study} not found (WADO-RS ${url}: HTTP 404)`, 'retrieve', true);
    if (!res.ok) throw new DicomWebError(base, `WADO-RS retrieve of series ${series} failed: ${await httpProblem(res)}`, 'retrieve');
    let body: Uint8Array;
    try {
      body = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new DicomWebError(base, `WADO-RS retrieve of series ${series} broke off (${networkProblem(e, REQUEST_TIMEOUT_MS)})`, 'retrieve');
    }
    return parseMultipart(body, res.headers.get('content-type') ?? '', base);
  }
  throw new DicomWebError(base, `WADO-RS retrieve of series ${series}: the server accepts no multipart application/dicom request`, 'retrieve');
}

function describeSeries(list: QidoSeries[]): string {
  return list.map((s) => `${s.uid} (${s.modality || '?'}${s.instances !== null ? `, ${s.instances} instance(s)` : ''})`).join(', ') || 'none';
}

/** A scan retrieved over DICOMweb: the LoadedScan analyze takes, and the instances' bytes (for the DICOM outputs). */
export interface DicomWebScan extends LoadedScan {
  files: Map<string, Uint8Array>;
  target: DicomWebTarget;
}

/**
 * Retrieves a study or series (see the module comment) and reads it as a folder would be read, `series` as
 * --series takes it (a SeriesInstanceUID, or a split key such as `UID:2`).
 */
export async function loadDicomWeb(arg: string, opts: { series?: string } = {}): Promise<DicomWebScan> {
  const target = parseDicomWebUrl(arg);
  const where = target.display;
  const all = await searchSeries(target.base, target.study);
  if (!all.length) throw new DicomWebError(target.base, `study ${target.study} not found (QIDO-RS lists no series for it)`, 'retrieve', true);
  const wanted = target.series ?? opts.series?.replace(/:\d+$/, '');
  let pick: QidoSeries[];
  if (wanted !== undefined) {
    pick = all.filter((s) => s.uid === wanted);
    if (!pick.length) throw new DicomWebError(target.base, `series ${wanted} not found in study ${target.study}; the study has ${describeSeries(all)}`, 'retrieve', true);
  } else {
    pick = all.filter((s) => s.modality.toUpperCase() === 'CT');
    if (!pick.length) throw new ScanError(where, `no CT series in study ${target.study}; found ${describeSeries(all)}`, 'unusable');
  }
  const files = new Map<string, Uint8Array>();
  for (const s of pick) {
    const parts = await retrieveSeries(target.base, target.study, s.uid);
    for (const [i, bytes] of parts.entries()) {
      let sop = '';
      try {
        sop = str((await parseDicom(bytes, 'part', true)).dataSet, 'x00080018');
      } catch {
        /* named by its place; the reader says what is wrong with it */
      }
      files.set(`${target.base}/studies/${target.study}/series/${s.uid}/instances/${sop || `#${i + 1}`}`, bytes);
    }
  }
  const scan = await scanDicomFiles([...files].map(([path, bytes]) => ({ path, bytes })), where);
  const chosen = chooseSeries(scan, opts.series ?? target.series);
  // Only the chosen series' bytes are needed from here on.
  const keep = new Set(chosen.files);
  for (const p of [...files.keys()]) if (!keep.has(p)) files.delete(p);
  const volume = await readDicomSeries(scan, chosen, files);
  const [nx, ny, nz] = axialGrid(volume).dims;
  if (nz < MIN_SLICES) throw new ScanError(where, `a 2-D image (${nz} axial slice of ${nx} x ${ny}), not a volume: the analysis needs at least ${MIN_SLICES} slices`, 'unusable');
  return { kind: 'dicom-folder', path: where, volume, dicom: { scan, chosen }, files, target };
}

/** One object to store. */
export interface StoreObject {
  name: string;
  bytes: Uint8Array;
  sopClassUID: string;
  sopInstanceUID: string;
  seriesInstanceUID: string;
}

/** What the server did with each object. */
export interface StoreOutcome {
  name: string;
  sopInstanceUID: string;
  stored: boolean;
  /** How the storage was confirmed, or why it failed. */
  note: string;
}

const FAILURE_REASONS: Record<number, string> = {
  0x0110: 'processing failure',
  0x0122: 'SOP class not supported',
  0x0124: 'not authorized',
  0xa700: 'out of resources',
  0xa900: 'data set does not match SOP class',
  0xc000: 'cannot understand',
  0xc122: 'referenced transfer syntax not supported',
  0xb000: 'coercion of data elements',
  0xb006: 'elements discarded',
  0xb007: 'data set does not match SOP class (warning)',
};

function reasonText(code: unknown): string {
  const n = typeof code === 'number' ? code : Number(code);
  if (!Number.isFinite(n)) return 'no reason given';
  return `0x${n.toString(16).toUpperCase().padStart(4, '0')}${FAILURE_REASONS[n] ? ` ${FAILURE_REASONS[n]}` : ''}`;
}

/**
 * STOW-RS of `objects` to `target` (see the module comment). Returns every object's outcome when all were
 * stored; throws DicomWebError (stage 'store') saying which were stored and which were not otherwise.
 */
export async function storeDicomWeb(target: { base: string; display: string }, studyUID: string, objects: StoreObject[]): Promise<StoreOutcome[]> {
  const boundary = `covidct-${globalThis.crypto.randomUUID()}`;
  const chunks: Uint8Array[] = [];
  for (const o of objects) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\nContent-Length: ${o.bytes.length}\r\n\r\n`, 'latin1'), o.bytes, Buffer.from('\r\n', 'latin1'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  const body = Buffer.concat(chunks);
  const url = `${target.base}/studies`;
  const res = await request(url, {
    method: 'POST',
    headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, Accept: 'application/dicom+json' },
    body,
  }, target.display, 'store');
  const text = res.status === 204 ? '' : await res.text().catch(() => '');
  let answer: DicomJson | undefined;
  if (text.trim()) {
    try {
      const j = JSON.parse(text);
      answer = (Array.isArray(j) ? j[0] : j) as DicomJson;
    } catch {
      answer = undefined;
    }
  }
  const seq = (tag: string): DicomJson[] => (answer?.[tag]?.Value ?? []) as DicomJson[];
  const referenced = new Map(seq('00081199').map((it) => [String(jsonValue(it, '00081155') ?? ''), it]));
  const failed = new Map(seq('00081198').map((it) => [String(jsonValue(it, '00081155') ?? ''), it]));
  if (!res.ok && res.status !== 202 && res.status !== 409) {
    if (!failed.size) throw new DicomWebError(target.display, `the server refused the store of ${objects.map((o) => o.name).join(', ')}: ${statusProblem(res.status, res.statusText, text)}; nothing stored`, 'store');
  }
  const outcomes: StoreOutcome[] = [];
  for (const o of objects) {
    const f = failed.get(o.sopInstanceUID);
    const r = referenced.get(o.sopInstanceUID);
    if (f) outcomes.push({ name: o.name, sopInstanceUID: o.sopInstanceUID, stored: false, note: `refused (FailureReason ${reasonText(jsonValue(f, '00081197'))})` });
    else if (r) {
      const warning = jsonValue(r, '00081196');
      outcomes.push({ name: o.name, sopInstanceUID: o.sopInstanceUID, stored: true, note: warning !== undefined ? `stored with a warning (WarningReason ${reasonText(warning)})` : 'stored' });
    } else if (res.ok || res.status === 202) {
      // The answer does not mention it: ask the server.
      const there = await hasInstance(target.base, studyUID, o.seriesInstanceUID, o.sopInstanceUID);
      outcomes.push({ name: o.name, sopInstanceUID: o.sopInstanceUID, stored: there, note: there ? 'stored (not in the STOW-RS answer; found by QIDO-RS)' : 'not confirmed: absent from the STOW-RS answer and not found by QIDO-RS' });
    } else outcomes.push({ name: o.name, sopInstanceUID: o.sopInstanceUID, stored: false, note: `not stored (HTTP ${res.status})` });
  }
  const bad = outcomes.filter((o) => !o.stored);
  if (bad.length) {
    const good = outcomes.filter((o) => o.stored);
    throw new DicomWebError(
      target.display,
      `store ${good.length ? 'partly ' : ''}failed (HTTP ${res.status}): ${bad.map((o) => `${o.name} ${o.note}`).join('; ')}; ${good.length ? `stored: ${good.map((o) => o.name).join(', ')}` : 'nothing stored'}`,
      'store',
    );
  }
  return outcomes;
}
