// A real PACS for the tests: Debian's Orthanc with its DICOMweb plugin (packages orthanc and orthanc-dicomweb,
// scripts/install-deps.sh), started by the test itself on a free port with a temporary storage folder, HTTP basic
// authentication on, the DICOM (DIMSE) server off, only local clients accepted; stopped and its folder removed
// afterwards. Orthanc has no bind-address setting: it listens on the port on every interface and refuses clients
// that are not this machine ("RemoteAccessAllowed": false); the tests talk to 127.0.0.1 only.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BINARIES = ['/usr/sbin/Orthanc', '/usr/bin/Orthanc'];
const PLUGINS = ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so', '/usr/lib/orthanc/libOrthancDicomWeb.so'];

/** A running Orthanc. */
export interface Orthanc {
  /** http://127.0.0.1:PORT */
  url: string;
  /** The DICOMweb base: http://127.0.0.1:PORT/dicom-web */
  dicomWeb: string;
  user: string;
  password: string;
  /** The Authorization header for the test's own requests. */
  auth: string;
  log(): string;
  stop(): Promise<void>;
}

/** A port nothing listens on right now (the kernel's choice for port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Starts Orthanc (see the module comment); throws, naming what is missing, when it is not installed. */
export async function startOrthanc(): Promise<Orthanc> {
  const bin = BINARIES.find(existsSync);
  const plugin = PLUGINS.find(existsSync);
  if (!bin || !plugin) throw new Error(`Orthanc with its DICOMweb plugin is not installed (${bin ? plugin ? '' : 'no libOrthancDicomWeb.so' : 'no Orthanc binary'}): run scripts/install-deps.sh (packages orthanc, orthanc-dicomweb)`);
  const user = 'covidct-test';
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  let lastLog = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'covidct-orthanc-'));
    const port = await freePort();
    const config = {
      Name: 'covidct-test',
      StorageDirectory: join(dir, 'db'),
      IndexDirectory: join(dir, 'db'),
      HttpPort: port,
      DicomServerEnabled: false,
      DicomPort: await freePort(),
      RemoteAccessAllowed: false,
      AuthenticationEnabled: true,
      RegisteredUsers: { [user]: password },
      Plugins: [plugin],
      DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false },
      HttpThreadsCount: 4,
      ConcurrentJobs: 1,
      StorageCompression: false,
      SaveJobs: false,
    };
    writeFileSync(join(dir, 'orthanc.json'), JSON.stringify(config, null, 2));
    const child = spawn(bin, [join(dir, 'orthanc.json')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout!.on('data', (d) => (log += d));
    child.stderr!.on('data', (d) => (log += d));
    const url = `http://127.0.0.1:${port}`;
    const auth = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    const stop = async () => {
      child.kill('SIGTERM');
      if (!(await waitExit(child, 15_000))) {
        child.kill('SIGKILL');
        await waitExit(child, 5_000);
      }
      rmSync(dir, { recursive: true, force: true });
    };
    const t0 = Date.now();
    while (Date.now() - t0 < 30_000 && child.exitCode === null) {
      try {
        const r = await fetch(`${url}/system`, { headers: { Authorization: auth }, signal: AbortSignal.timeout(2000) });
        if (r.ok) return { url, dicomWeb: `${url}/dicom-web`, user, password, auth, log: () => log, stop };
      } catch {
        /* not up yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    lastLog = log;
    await stop();
  }
  throw new Error(`Orthanc did not start (3 tries); its last log:\n${lastLog.split('\n').slice(-20).join('\n')}`);
}

/** A multipart/related body of DICOM files, as STOW-RS takes it. */
export function multipartDicom(files: Uint8Array[]): { body: Buffer; contentType: string } {
  const boundary = `test-${Math.random().toString(36).slice(2)}`;
  const parts: Buffer[] = [];
  for (const f of files) parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), Buffer.from(f), Buffer.from('\r\n'));
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}
