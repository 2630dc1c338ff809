// DICOMweb in and out against a real PACS: Debian's Orthanc with its DICOMweb plugin, started here on 127.0.0.1
// (test/orthanc.ts). The real CT fixture series is uploaded (STOW-RS, by the test's own request), analysed from
// Orthanc through the built CLI (`analyze dicomweb:.../studies/<uid> --store .../dicom-web`: QIDO-RS, WADO-RS,
// then STOW-RS of seg.dcm, sr.dcm and contact_sheet.dcm), the results found with QIDO-RS and read back with
// WADO-RS byte for byte. Then every failure through the CLI with its one line and exit code: an unreachable
// server, a study or series the server does not have, refused credentials, credentials in the URL, a store the
// server refuses, a partial STOW-RS answer, an answer that confirms nothing. A small fake DICOMweb server (in this
// process, bearer token required) gives the answers Orthanc does not.
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SC_FILE, SEG_FILE, SR_FILE } from '../src/analysis/dicom-outputs.js';
import { parseDicom, str } from '../src/io/dicom/parse.js';
import { AUTH_ENV, authorization, loadDicomWeb, parseDicomWebUrl, parseMultipart, parseStoreUrl, storeDicomWeb, DicomWebError } from '../src/node/dicomweb.js';
import { writePart10 } from '../src/io/dicom/dcmjs.js';
import { newUid } from '../src/io/dicom/derived.js';
import { loadScan } from '../src/node/scan-path.js';
import { ROOT } from './fixtures.js';
import { freePort, multipartDicom, startOrthanc, type Orthanc } from './orthanc.js';

const REAL = join(ROOT, 'test/fixtures/scans/real/ct_3slice');
const WEIGHTS = join(ROOT, 'weights/trained/synthetic-small.safetensors');
const STUDY = '1.2.392.200103.20080913.113635.0.2009.6.22.21.43.10.22941.1';
const SERIES = '1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1';
const TOKEN = `tok-${Math.random().toString(36).slice(2)}`;

let orthanc: Orthanc;
let tmp: string;

/** The built CLI, asynchronously (the fake server answers from this process meanwhile). */
function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const e: Record<string, string | undefined> = { ...process.env, ...env };
    for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
    const child = spawn(process.execPath, [join(ROOT, 'dist/cli.js'), ...args], { cwd: ROOT, env: e as NodeJS.ProcessEnv });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out, err });
    });
  });
}

/** stderr without Dawn's adapter notes (another issue quiets those). */
function errLines(err: string): string[] {
  return err.trim().split('\n').filter((l) => l && !/^Warning: maxDynamic/.test(l));
}

async function get(url: string, accept: string): Promise<Response> {
  return fetch(url, { headers: { Authorization: orthanc.auth, Accept: accept } });
}

beforeAll(async () => {
  execFileSync(process.execPath, ['build.mjs'], { cwd: ROOT, stdio: 'ignore' });
  tmp = mkdtempSync(join(tmpdir(), 'covidct-dicomweb-'));
  orthanc = await startOrthanc();
  const { body, contentType } = multipartDicom(readdirSync(REAL).map((f) => readFileSync(join(REAL, f))));
  const r = await fetch(`${orthanc.dicomWeb}/studies`, { method: 'POST', body: new Uint8Array(body), headers: { Authorization: orthanc.auth, 'Content-Type': contentType, Accept: 'application/dicom+json' } });
  expect(r.status, await r.clone().text()).toBe(200);
}, 120_000);

afterAll(async () => {
  await orthanc?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the round trip through Orthanc', () => {
  let out: string;
  let run: { code: number; out: string; err: string };
  const scanUrl = () => `dicomweb:${orthanc.dicomWeb}/studies/${STUDY}`;

  beforeAll(async () => {
    out = join(tmp, 'round-trip');
    run = await cli(['analyze', scanUrl(), '--weights', WEIGHTS, '--size', '64', '--out', out, '--store', orthanc.dicomWeb, '--quiet'], { [AUTH_ENV]: `basic ${orthanc.user}:${orthanc.password}` });
    console.log(`covidct analyze ${scanUrl()} --store ${orthanc.dicomWeb}: exit ${run.code}\n${run.out}${errLines(run.err).join('\n')}`);
  }, 300_000);

  it('retrieves the study (QIDO-RS, WADO-RS), analyses it, stores seg.dcm, sr.dcm and contact_sheet.dcm (STOW-RS) and says so', () => {
    expect(run.code, run.err).toBe(0);
    expect(errLines(run.err)).toEqual([]);
    expect(run.out).toMatch(new RegExp(`^input: ${scanUrl().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(dicom, series ${SERIES.replace(/\./g, '\\.')}\\), 512 x 512 x 3 voxels`, 'm'));
    expect(run.out).toContain(`stored on ${orthanc.dicomWeb}: seg.dcm, sr.dcm, contact_sheet.dcm (study ${STUDY})\n`);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.input.path).toBe(scanUrl());
    expect(report.input.seriesUID).toBe(SERIES);
    // the credentials never show: not on the terminal, not in the report
    for (const text of [run.out, run.err, readFileSync(join(out, 'report.json'), 'utf8')]) {
      expect(text).not.toContain(orthanc.password);
      expect(text).not.toContain(orthanc.auth.slice('Basic '.length));
    }
  });

  it('QIDO-RS finds the three new series in the study and their instances; WADO-RS returns them byte for byte', async () => {
    const series = (await (await get(`${orthanc.dicomWeb}/studies/${STUDY}/series`, 'application/dicom+json')).json()) as Record<string, { Value?: unknown[] }>[];
    const modalities = series.map((s) => String(s['00080060']?.Value?.[0])).sort();
    expect(modalities).toEqual(['CT', 'OT', 'SEG', 'SR']);
    for (const name of [SEG_FILE, SR_FILE, SC_FILE]) {
      const mine = new Uint8Array(readFileSync(join(out, name)));
      const ds = (await parseDicom(mine, name, true)).dataSet;
      const se = str(ds, 'x0020000e');
      const sop = str(ds, 'x00080018');
      const found = (await (await get(`${orthanc.dicomWeb}/studies/${STUDY}/series/${se}/instances`, 'application/dicom+json')).json()) as Record<string, { Value?: unknown[] }>[];
      expect(found.map((i) => i['00080018']?.Value?.[0])).toEqual([sop]);
      const r = await get(`${orthanc.dicomWeb}/studies/${STUDY}/series/${se}/instances/${sop}`, 'multipart/related; type="application/dicom"; transfer-syntax=*');
      expect(r.status).toBe(200);
      const parts = parseMultipart(new Uint8Array(await r.arrayBuffer()), r.headers.get('content-type') ?? '', 'orthanc');
      expect(parts.length).toBe(1);
      expect(Buffer.compare(Buffer.from(parts[0]!), Buffer.from(mine)), `${name} read back`).toBe(0);
    }
  });

  it('reads the study as the folder is read: same volume, the CT series chosen although SEG, SR and OT series are there now; a series URL and --series', async () => {
    const local = (await loadScan(REAL)).volume;
    const saved = process.env[AUTH_ENV];
    process.env[AUTH_ENV] = `basic ${orthanc.user}:${orthanc.password}`;
    try {
      for (const [arg, series] of [[scanUrl(), undefined], [`${scanUrl()}/series/${SERIES}`, undefined], [scanUrl(), SERIES]] as const) {
        const w = await loadDicomWeb(arg, series ? { series } : {});
        expect(w.dicom!.chosen.uid).toBe(SERIES);
        expect(w.volume.dims).toEqual(local.dims);
        expect(Array.from(w.volume.affine)).toEqual(Array.from(local.affine));
        expect(Buffer.compare(Buffer.from(w.volume.data.buffer), Buffer.from(local.data.buffer))).toBe(0);
        expect([...w.files.keys()].every((k) => k.startsWith(`${orthanc.dicomWeb}/studies/${STUDY}/series/${SERIES}/instances/`))).toBe(true);
      }
      // asking for the SEG series names what it is
      const segSeries = str((await parseDicom(new Uint8Array(readFileSync(join(out, SEG_FILE))), 's', true)).dataSet, 'x0020000e');
      await expect(loadDicomWeb(scanUrl(), { series: segSeries })).rejects.toThrow(/no DICOM image found among 1 file\(s\): .*segmentation object, not an image/);
    } finally {
      if (saved === undefined) delete process.env[AUTH_ENV];
      else process.env[AUTH_ENV] = saved;
    }
  });
});

describe('retrieve failures through the CLI: one line, the documented exit code, no output folder', () => {
  const auth = () => ({ [AUTH_ENV]: `basic ${orthanc.user}:${orthanc.password}` });
  it.each([
    ['an unreachable server', async () => `dicomweb:http://127.0.0.1:${await freePort()}/dicom-web/studies/${STUDY}`, auth, 6, /^covidct: http:\/\/127\.0\.0\.1:\d+\/dicom-web: cannot reach the DICOMweb server \(connection refused\)$/],
    ['a study the server does not have', async () => `dicomweb:${orthanc.dicomWeb}/studies/1.2.3.4`, auth, 3, /^covidct: http:\/\/127\.0\.0\.1:\d+\/dicom-web: study 1\.2\.3\.4 not found \(QIDO-RS lists no series for it\)$/],
    ['a series the study does not have', async () => `dicomweb:${orthanc.dicomWeb}/studies/${STUDY}/series/1.2.3.4`, auth, 3, /^covidct: http:\/\/127\.0\.0\.1:\d+\/dicom-web: series 1\.2\.3\.4 not found in study [\d.]+; the study has .*\(CT, 3 instance\(s\)\)/],
    ['wrong credentials', async () => `dicomweb:${orthanc.dicomWeb}/studies/${STUDY}`, () => ({ [AUTH_ENV]: `basic ${orthanc.user}:not-the-password` }), 6, /^covidct: http:\/\/127\.0\.0\.1:\d+\/dicom-web: the server refused access \(HTTP 401 Unauthorized\): check the credentials in COVIDCT_DICOMWEB_AUTH$/],
    ['no credentials', async () => `dicomweb:${orthanc.dicomWeb}/studies/${STUDY}`, () => ({ [AUTH_ENV]: undefined }), 6, /^covidct: .*: the server refused access \(HTTP 401 Unauthorized\): set COVIDCT_DICOMWEB_AUTH \('basic USER:PASSWORD' or 'bearer TOKEN'\)$/],
    ['credentials in the URL', async () => `dicomweb:http://${orthanc.user}:${orthanc.password}@127.0.0.1:1/dicom-web/studies/${STUDY}`, auth, 2, /^covidct: http:\/\/127\.0\.0\.1:1\/dicom-web\/studies\/[\d.]+: credentials in the URL are not accepted .*COVIDCT_DICOMWEB_AUTH/],
    ['a malformed credentials variable', async () => `dicomweb:${orthanc.dicomWeb}/studies/${STUDY}`, () => ({ [AUTH_ENV]: `token ${orthanc.password}` }), 2, /^covidct: COVIDCT_DICOMWEB_AUTH: must be 'basic USER:PASSWORD', 'basic BASE64' or 'bearer TOKEN' \(its value is not shown\)$/],
    ['a URL without a study', async () => `dicomweb:${orthanc.dicomWeb}`, auth, 2, /^covidct: dicomweb:http:\/\/127\.0\.0\.1:\d+\/dicom-web: expected dicomweb:http:\/\/host:port\/<dicom-web base>\/studies\/<StudyInstanceUID>/],
  ] as const)('%s', async (what, url, env, code, message) => {
    const out = join(tmp, `fail-${Math.random().toString(36).slice(2)}`);
    const r = await cli(['analyze', await url(), '--weights', WEIGHTS, '--out', out], env());
    console.log(`covidct analyze <${what}>: exit ${r.code}: ${errLines(r.err).join(' | ')}`);
    expect(r.code).toBe(code);
    expect(r.out).toBe('');
    expect(errLines(r.err)).toEqual([expect.stringMatching(message)]);
    expect(r.err).not.toContain(orthanc.password);
    expect(r.err).not.toContain(orthanc.auth.slice('Basic '.length));
    expect(existsSync(out)).toBe(false);
  });
});

/** A fake DICOMweb server: STOW-RS answers chosen by the path's first segment; bearer token required. */
function fakeServer(): Promise<{ url: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      requests.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'}`);
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        res.writeHead(401, { 'Content-Type': 'text/plain' }).end('token required');
        return;
      }
      const mode = (req.url ?? '').split('/')[1];
      if (req.method === 'GET') {
        // QIDO-RS instance search: nothing is ever there
        res.writeHead(200, { 'Content-Type': 'application/dicom+json' }).end('[]');
        return;
      }
      const parts = parseMultipart(new Uint8Array(Buffer.concat(chunks)), req.headers['content-type'] ?? '', 'fake');
      const sops: { cls: string; uid: string }[] = [];
      for (const p of parts) {
        const ds = (await parseDicom(p, 'part', true)).dataSet;
        sops.push({ cls: str(ds, 'x00080016'), uid: str(ds, 'x00080018') });
      }
      const item = (s: { cls: string; uid: string }, extra: Record<string, unknown> = {}) => ({ '00081150': { vr: 'UI', Value: [s.cls] }, '00081155': { vr: 'UI', Value: [s.uid] }, ...extra });
      const failed = (s: { cls: string; uid: string }) => item(s, { '00081197': { vr: 'US', Value: [0xc000] } });
      if (mode === 'partial') {
        res.writeHead(202, { 'Content-Type': 'application/dicom+json' }).end(JSON.stringify({ '00081199': { vr: 'SQ', Value: [item(sops[0]!)] }, '00081198': { vr: 'SQ', Value: sops.slice(1).map(failed) } }));
      } else if (mode === 'refuse') {
        res.writeHead(409, { 'Content-Type': 'application/dicom+json' }).end(JSON.stringify({ '00081198': { vr: 'SQ', Value: sops.map(failed) } }));
      } else if (mode === 'silent') {
        res.writeHead(200, { 'Content-Type': 'application/dicom+json' }).end('{}');
      } else if (mode === 'broken') {
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end('disk full');
      } else res.writeHead(404).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server, requests })));
}

describe('store failures through the CLI: one line, exit 7, the results written, nothing reported as stored that was not', () => {
  let fake: Awaited<ReturnType<typeof fakeServer>>;
  beforeAll(async () => {
    fake = await fakeServer();
  });
  afterAll(() => new Promise<void>((r) => fake.server.close(() => r())));

  it.each([
    ['a partial STOW-RS answer (202: seg.dcm stored, the others failed)', 'partial', () => ({ [AUTH_ENV]: `bearer ${TOKEN}` }),
      /^covidct: http:\/\/127\.0\.0\.1:\d+\/partial\/dicom-web: store partly failed \(HTTP 202\): sr\.dcm refused \(FailureReason 0xC000 cannot understand\); contact_sheet\.dcm refused \(FailureReason 0xC000 cannot understand\); stored: seg\.dcm$/],
    ['a refused store (409: every instance failed)', 'refuse', () => ({ [AUTH_ENV]: `bearer ${TOKEN}` }),
      /^covidct: http:\/\/127\.0\.0\.1:\d+\/refuse\/dicom-web: store failed \(HTTP 409\): seg\.dcm refused \(FailureReason 0xC000 cannot understand\); sr\.dcm refused .*; nothing stored$/],
    ['refused credentials (no token)', 'partial', () => ({ [AUTH_ENV]: undefined }),
      /^covidct: .*\/partial\/dicom-web: the server refused access \(HTTP 401 Unauthorized \(token required\)\): set COVIDCT_DICOMWEB_AUTH/],
    ['an unreachable store server', 'unreachable', () => ({ [AUTH_ENV]: `bearer ${TOKEN}` }), /^covidct: http:\/\/127\.0\.0\.1:\d+\/dicom-web: cannot reach the DICOMweb server \(connection refused\)$/],
  ] as const)('%s', async (what, mode, env, message) => {
    const out = join(tmp, `store-${mode}-${Math.random().toString(36).slice(2)}`);
    const store = mode === 'unreachable' ? `http://127.0.0.1:${await freePort()}/dicom-web` : `${fake.url}/${mode}/dicom-web`;
    const r = await cli(['analyze', REAL, '--weights', WEIGHTS, '--size', '64', '--out', out, '--store', store, '--quiet'], env());
    console.log(`covidct analyze --store <${what}>: exit ${r.code}: ${errLines(r.err).join(' | ')}`);
    expect(r.code).toBe(7);
    expect(errLines(r.err)).toEqual([expect.stringMatching(message)]);
    expect(r.out).not.toMatch(/stored on/);
    expect(r.out).toMatch(/^patient: /m); // the analysis itself is done and shown
    expect(readdirSync(out).sort()).toEqual(['contact_sheet.dcm', 'infection.nii.gz', 'lung_mask.nii.gz', 'overlays', 'report.json', 'seg.dcm', 'sr.dcm']);
    expect(r.err).not.toContain(TOKEN);
  });

  it('an answer that confirms nothing (200, empty; QIDO-RS does not find them) and a server error (500): stage store, nothing reported stored', async () => {
    const saved = process.env[AUTH_ENV];
    process.env[AUTH_ENV] = `bearer ${TOKEN}`;
    try {
      const objects = await Promise.all(['a.dcm', 'b.dcm'].map(async (name) => {
        const uid = newUid();
        const series = newUid();
        return { name, sopClassUID: '1.2.840.10008.5.1.4.1.1.7', sopInstanceUID: uid, seriesInstanceUID: series, bytes: await writePart10({ SOPClassUID: '1.2.840.10008.5.1.4.1.1.7', SOPInstanceUID: uid, SeriesInstanceUID: series, StudyInstanceUID: STUDY }) };
      }));
      for (const [mode, message] of [
        ['silent', /^http:\/\/127\.0\.0\.1:\d+\/silent\/dicom-web: store failed \(HTTP 200\): a\.dcm not confirmed: absent from the STOW-RS answer and not found by QIDO-RS; b\.dcm not confirmed: .*; nothing stored$/],
        ['broken', /^http:\/\/127\.0\.0\.1:\d+\/broken\/dicom-web: the server refused the store of a\.dcm, b\.dcm: HTTP 500 Internal Server Error \(disk full\); nothing stored$/],
      ] as const) {
        const e = await storeDicomWeb(parseStoreUrl(`${fake.url}/${mode}/dicom-web`), STUDY, objects).then(() => undefined, (x: unknown) => x);
        expect(e).toBeInstanceOf(DicomWebError);
        expect((e as DicomWebError).stage).toBe('store');
        expect((e as Error).message).toMatch(message);
      }
      expect(fake.requests.some((q) => q.startsWith('GET /silent/dicom-web/studies/') && q.includes('/instances?SOPInstanceUID='))).toBe(true);
    } finally {
      if (saved === undefined) delete process.env[AUTH_ENV];
      else process.env[AUTH_ENV] = saved;
    }
  });

  it('the bearer token reaches the server as the Authorization header', () => {
    expect(fake.requests.some((q) => q.startsWith('POST /partial/dicom-web/studies ') && q.endsWith(`Bearer ${TOKEN}`))).toBe(true);
  });
});

describe('https, as Node\'s fetch does it', () => {
  it('a server whose certificate is trusted (NODE_EXTRA_CA_CERTS) answers; an untrusted one is one line, exit 6', async () => {
    const tls = join(ROOT, 'test/fixtures/tls');
    const server = createHttpsServer({ key: readFileSync(join(tls, 'localhost.key')), cert: readFileSync(join(tls, 'localhost.crt')) }, (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/dicom+json' }).end('[]');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `dicomweb:https://127.0.0.1:${(server.address() as { port: number }).port}/dicom-web/studies/1.2.3`;
      const trusted = await cli(['analyze', url], { NODE_EXTRA_CA_CERTS: join(tls, 'localhost.crt'), [AUTH_ENV]: undefined });
      expect(trusted.code).toBe(3);
      expect(errLines(trusted.err)).toEqual([expect.stringMatching(/^covidct: https:\/\/127\.0\.0\.1:\d+\/dicom-web: study 1\.2\.3 not found \(QIDO-RS lists no series for it\)$/)]);
      const untrusted = await cli(['analyze', url], { NODE_EXTRA_CA_CERTS: undefined, [AUTH_ENV]: undefined });
      console.log(`https, untrusted certificate: exit ${untrusted.code}: ${errLines(untrusted.err).join(' | ')}`);
      expect(untrusted.code).toBe(6);
      expect(errLines(untrusted.err)).toEqual([expect.stringMatching(/^covidct: https:\/\/127\.0\.0\.1:\d+\/dicom-web: cannot reach the DICOMweb server \(the server's certificate is self-signed and not trusted/)]);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('URLs and credentials', () => {
  it('parses study and series URLs and store bases; refuses what is not one, without showing credentials', () => {
    expect(parseDicomWebUrl('dicomweb:https://pacs.example:8443/dcm4chee-arc/aets/DCM4CHEE/rs/studies/1.2.3/series/4.5.6')).toEqual({
      base: 'https://pacs.example:8443/dcm4chee-arc/aets/DCM4CHEE/rs', study: '1.2.3', series: '4.5.6', display: 'dicomweb:https://pacs.example:8443/dcm4chee-arc/aets/DCM4CHEE/rs/studies/1.2.3/series/4.5.6',
    });
    expect(parseStoreUrl('http://h:8042/dicom-web/')).toEqual({ base: 'http://h:8042/dicom-web', display: 'http://h:8042/dicom-web' });
    expect(parseStoreUrl('dicomweb:http://h:8042/dicom-web/studies')).toEqual({ base: 'http://h:8042/dicom-web', display: 'http://h:8042/dicom-web' });
    expect(() => parseDicomWebUrl('dicomweb:http://h/dicom-web/studies/1.2.x')).toThrow(/'1\.2\.x' is not a StudyInstanceUID/);
    expect(() => parseStoreUrl('ftp://h/x')).toThrow(/ftp: is not http: or https:/);
    try {
      parseStoreUrl('http://me:hunter2@h/dicom-web');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DicomWebError);
      expect(String((e as Error).message)).not.toContain('hunter2');
    }
    expect(authorization({ [AUTH_ENV]: 'basic me:p:w' })).toBe(`Basic ${Buffer.from('me:p:w').toString('base64')}`);
    expect(authorization({ [AUTH_ENV]: 'Basic bWU6cHc=' })).toBe('Basic bWU6cHc=');
    expect(authorization({ [AUTH_ENV]: ' bearer abc.def ' })).toBe('Bearer abc.def');
    expect(authorization({})).toBeUndefined();
    expect(() => authorization({ [AUTH_ENV]: 'secret-value' })).toThrow(/^COVIDCT_DICOMWEB_AUTH: must be .*\(its value is not shown\)$/);
  });

  it('multipart answers: parts split at the boundary (quoted or not), a cut-short answer and a non-DICOM part refused', () => {
    const a = new Uint8Array([1, 2, 13, 10, 45, 45, 3]);
    const b = new Uint8Array([4, 5, 6]);
    const { body, contentType } = multipartDicom([a, b]);
    expect(parseMultipart(new Uint8Array(body), contentType, 'x').map((p) => Array.from(p))).toEqual([Array.from(a), Array.from(b)]);
    const unquoted = contentType.replace(/boundary=(\S+)/, 'boundary="$1"');
    expect(parseMultipart(new Uint8Array(body), unquoted, 'x').length).toBe(2);
    expect(() => parseMultipart(new Uint8Array(body.subarray(0, body.length - 20)), contentType, 'x')).toThrow(/part 2 of the multipart answer is cut short/);
    const text = Buffer.from(body.toString('latin1').replace('Content-Type: application/dicom', 'Content-Type: text/html'), 'latin1');
    expect(() => parseMultipart(new Uint8Array(text), contentType, 'x')).toThrow(/part 1 is text\/html, not application\/dicom/);
    expect(() => parseMultipart(new Uint8Array(body), 'application/json', 'x')).toThrow(/expected a multipart\/related answer, got application\/json/);
  });
});
