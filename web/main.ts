/**
 * The page: takes a scan (drop, file dialog, folder dialog or the bundled sample), hands it to the worker, shows
 * progress with a cancel button, then the viewer, the patient card, the chart along the body axis and the
 * downloads. Problems are shown as banners and the page stays ready for the next file.
 * @module
 */
import { drawSliceChart, escapeHtml, type SliceChart } from './chart.js';
import { BUNDLED_WEIGHTS_NAME } from './bundled.js';
import { SOFTWARE_ADAPTER_NOTE, WEBGPU_HELP } from './problems.js';
import type { FromWorker, InputFile, OutputFile, ToWorker } from './protocol.js';
import { readReport, type ReportView } from './report-view.js';
import { Viewer, type Layout, type WindowName } from './viewer.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** What tests and curious users can read: the state of the page. */
interface PageState {
  status: 'idle' | 'running' | 'done' | 'error';
  /** Runs finished with a result. */
  runs: number;
  /** Id of the last run started, and of the last one that ended (result, error or cancel). */
  started: number;
  settled: number;
  adapter: string | null;
  isSoftware: boolean | null;
  report: unknown;
  files: string[];
  error: { kind: string; message: string } | null;
  progress: { stage: string; done: number; total: number; slicesPerSec: number | null } | null;
  /** The series of the last DICOM folder (the list to pick another), and the key of the one analysed. */
  series: { key: string; uid: string; description: string; slices: number; rows: number; columns: number }[];
  chosenSeries: string | null;
  seconds: number | null;
  viewerReady: boolean;
}
const state: PageState = { status: 'idle', runs: 0, started: 0, settled: 0, adapter: null, isSoftware: null, report: null, files: [], error: null, progress: null, series: [], chosenSeries: null, seconds: null, viewerReady: false };
(window as unknown as { covidct: PageState }).covidct = state;

let worker: Worker | null = null;
let runId = 0;
let running: number | null = null;
let lastFiles: InputFile[] = [];
let weights: InputFile | undefined;
let viewer: Viewer | null = null;
let chart: SliceChart | null = null;
let downloadUrls: string[] = [];

function banner(kind: 'info' | 'warn' | 'error', text: string, opts: { id?: string; detail?: string; dismiss?: boolean } = {}): void {
  if (opts.id) document.getElementById(opts.id)?.remove();
  const div = document.createElement('div');
  div.className = `banner ${kind}`;
  div.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  if (opts.id) div.id = opts.id;
  const p = document.createElement('p');
  p.textContent = text;
  div.append(p);
  if (opts.detail) {
    const d = document.createElement('details');
    d.innerHTML = `<summary>details</summary>${escapeHtml(opts.detail)}`;
    p.append(d);
  }
  if (opts.dismiss !== false) {
    const b = document.createElement('button');
    b.className = 'small';
    b.textContent = 'Dismiss';
    b.addEventListener('click', () => div.remove());
    div.append(b);
  }
  $('banners').append(div);
}

function clearProblemBanners(): void {
  document.querySelectorAll('#banners .banner.error, #banner-weights, #banner-cancelled').forEach((b) => b.remove());
}

function setRunning(on: boolean): void {
  ($('cancel') as HTMLButtonElement).disabled = !on;
  ($('sample') as HTMLButtonElement).disabled = false;
  $('progress').hidden = !on;
}

function startWorker(): Worker {
  const w = new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
  w.onmessage = (ev: MessageEvent<FromWorker>) => onWorker(ev.data);
  w.onerror = (ev) => {
    ev.preventDefault();
    fail(null, 'internal', `The analysis worker failed: ${ev.message || 'unknown error'}. It has been restarted; try again.`);
    w.terminate();
    worker = null;
  };
  return w;
}

function send(msg: ToWorker): void {
  worker ??= startWorker();
  worker.postMessage(msg);
}

function start(msg: { type: 'analyze'; files: InputFile[]; series?: string } | { type: 'sample' }): void {
  if (!navigator.gpu) {
    // A run that ends at once, with the message.
    state.started = state.settled = ++runId;
    noWebGpu();
    return;
  }
  if (running !== null) send({ type: 'cancel', id: running });
  const id = ++runId;
  running = id;
  state.started = id;
  clearProblemBanners();
  state.status = 'running';
  state.error = null;
  state.progress = null;
  setRunning(true);
  $('progress-text').textContent = 'starting';
  const bar = $('progress-bar') as HTMLProgressElement;
  bar.removeAttribute('value');
  if (msg.type !== 'analyze' || msg.series === undefined) {
    // New files (not another series of the same folder): the old list goes until the worker posts the new one.
    $('series-box').hidden = true;
    state.series = [];
    state.chosenSeries = null;
  }
  if (msg.type === 'analyze') {
    lastFiles = msg.files;
    send({ ...msg, id, ...(weights ? { weights } : {}) });
  } else {
    send({ type: 'sample', id, ...(weights ? { weights } : {}) });
  }
}

function fail(id: number | null, kind: string, message: string, detail?: string): void {
  if (id !== null && id !== running) return;
  if (id !== null) running = null;
  if (id !== null) state.settled = id;
  state.status = 'error';
  state.error = { kind, message };
  setRunning(running !== null);
  if (kind === 'cancelled') {
    banner('info', 'Analysis cancelled.', { id: 'banner-cancelled' });
    return;
  }
  if (kind === 'no-webgpu') {
    noWebGpu(message);
    return;
  }
  const prefix: Record<string, string> = {
    'not-a-scan': 'Not a scan: ',
    unsupported: 'Not supported: ',
    unusable: 'This scan cannot be analysed: ',
    empty: 'Nothing to analyse: ',
    'too-large': '',
    'gpu-lost': '',
    weights: '',
    internal: 'Something went wrong: ',
  };
  banner('error', `${prefix[kind] ?? ''}${message}`, detail ? { detail } : {});
}

function noWebGpu(message = WEBGPU_HELP): void {
  state.status = 'error';
  state.error = { kind: 'no-webgpu', message };
  $('adapter').textContent = 'GPU: no WebGPU';
  banner('error', message, { id: 'banner-webgpu', dismiss: false });
}

function onWorker(m: FromWorker): void {
  switch (m.type) {
    case 'gpu': {
      state.adapter = m.adapter;
      state.isSoftware = m.isSoftware;
      const chip = $('adapter');
      chip.textContent = `GPU: ${m.adapter}${m.isSoftware ? ' (software)' : ''}`;
      chip.classList.toggle('software', m.isSoftware);
      if (m.isSoftware && !document.getElementById('banner-software')) banner('warn', `${m.adapter}: ${SOFTWARE_ADAPTER_NOTE}`, { id: 'banner-software' });
      return;
    }
    case 'progress': {
      if (m.id !== running) return;
      state.progress = { stage: m.stage, done: m.done, total: m.total, slicesPerSec: m.slicesPerSec };
      const rate = m.slicesPerSec !== null && /slice|stage|analys/i.test(m.stage) ? `, ${m.slicesPerSec.toFixed(m.slicesPerSec < 10 ? 2 : 1)} slices/s` : '';
      $('progress-text').textContent = `${m.stage}: ${m.done} of ${m.total}${rate}`;
      const bar = $('progress-bar') as HTMLProgressElement;
      bar.max = Math.max(1, m.total);
      bar.value = m.done;
      return;
    }
    case 'series': {
      if (m.id !== running) return;
      state.series = m.series.map((s) => ({ key: s.key, uid: s.uid, description: s.description, slices: s.slices, rows: s.rows, columns: s.columns }));
      state.chosenSeries = m.chosen;
      const box = $('series-box');
      box.hidden = m.series.length < 2;
      const sel = $('series') as HTMLSelectElement;
      sel.textContent = '';
      for (const s of m.series) {
        const o = document.createElement('option');
        o.value = s.key;
        o.textContent = `${s.modality} ${s.description || s.uid}: ${s.slices} slices of ${s.columns} x ${s.rows}${s.splitReason ? ` (split: ${s.splitReason})` : ''}${s.isCT ? '' : ' (not CT)'}`;
        o.selected = s.key === m.chosen;
        sel.append(o);
      }
      $('series-note').textContent = `${m.series.length} series${m.skipped ? `, ${m.skipped} files skipped` : ''}; the CT series with the most slices is chosen first`;
      return;
    }
    case 'error':
      fail(m.id, m.kind, m.message, m.detail);
      return;
    case 'result':
      if (m.id !== running) return;
      running = null;
      setRunning(false);
      void showResult(m.report, m.ct, m.lung, m.files, m.input, m.seconds).finally(() => (state.settled = m.id));
      return;
  }
}

async function showResult(report: unknown, ct: Uint8Array, lung: Uint8Array, files: OutputFile[], input: string, seconds: number): Promise<void> {
  state.report = report;
  state.files = files.map((f) => f.name);
  state.seconds = seconds;
  state.runs++;
  let view: ReportView;
  try {
    view = readReport(report);
  } catch (e) {
    fail(null, 'internal', `the report could not be read: ${(e as Error).message}`);
    return;
  }
  $('result').hidden = false;
  if (view.weightsWarning) banner('warn', view.weightsWarning, { id: 'banner-weights', dismiss: false });
  drawCard(view, input, seconds);
  chart = drawSliceChart($('chart'), view.slices, view.classNames, (i) => viewer?.goToSlice(i));
  drawDownloads(files);
  const find = (re: RegExp) => files.find((f) => re.test(f.name))?.bytes ?? null;
  try {
    viewer ??= makeViewer();
    state.viewerReady = false;
    await viewer.show(ct, lung, find(/(^|\/)infection\.nii(\.gz)?$/));
    viewer.setLayout(($('layout') as HTMLSelectElement).value as Layout);
    viewer.setWindow(($('window') as HTMLSelectElement).value as WindowName);
    const best = view.slices.reduce((b, s, i) => ((s.infectedFraction ?? -1) > (view.slices[b]?.infectedFraction ?? -1) ? i : b), 0);
    viewer.goToSlice(best);
    chart.setCurrent(best);
    state.viewerReady = true;
  } catch (e) {
    banner('error', `The viewer could not show the volumes (${(e as Error).message}); the results and downloads below are complete.`);
  }
  state.status = 'done';
}

function fmt(v: number, digits = 1): string {
  return Number.isFinite(v) ? v.toFixed(digits) : 'n/a';
}

function drawCard(v: ReportView, input: string, seconds: number): void {
  const card = $('card');
  const speed = v.slicesPerSec !== null ? `${fmt(v.slicesPerSec, v.slicesPerSec < 10 ? 2 : 1)} slices/s` : 'n/a';
  const rows: [string, string][] = [];
  let head: string;
  if (v.patient.found) {
    const p = v.patient;
    head = `<div class="label-big" id="patient-label">${escapeHtml(p.label)}</div>`;
    v.classNames.forEach((c, k) => {
      const pr = p.probs[k] ?? NaN;
      rows.push([`P(${escapeHtml(c)})`, `<span class="probbar" style="width:${Math.round((Number.isFinite(pr) ? pr : 0) * 60)}px"></span> ${fmt(pr * 100)} %`]);
    });
    rows.push([p.support ? 'uncertainty (normalised entropy, calibrated)' : 'uncertainty (normalised entropy, uncalibrated weights)', fmt(p.uncertainty, 2)]);
    if (p.support) rows.push(['out-of-distribution score', `${fmt(p.support.oodScore, 2)} (supported up to ${fmt(p.support.oodThreshold, 2)}; temperature ${fmt(p.support.temperature, 2)})`]);
    rows.push(['lung volume', `${fmt(p.lungMl, 0)} mL`]);
    rows.push(['infected volume', `${fmt(p.infectedMl, 1)} mL`]);
    rows.push(['lung involvement', `${fmt(p.involvementPct)} %`]);
    if (p.slicesUsed !== null) rows.push(['slices used', String(p.slicesUsed)]);
  } else {
    head = `<div class="label-big" id="patient-label">${escapeHtml(v.patient.title)}</div><p id="patient-reason">${escapeHtml(v.patient.message)}</p>`;
  }
  rows.push(['input', escapeHtml(input)]);
  rows.push(['weights', escapeHtml(v.weightsName || 'bundled')]);
  rows.push(['adapter', escapeHtml(v.adapter)]);
  rows.push(['speed', speed]);
  rows.push(['time (this run, in the page)', `${fmt(seconds)} s`]);
  card.innerHTML = `<h3>Patient</h3>${head}<table>${rows.map(([a, b]) => `<tr><td>${a}</td><td>${b}</td></tr>`).join('')}</table>`;
}

function drawDownloads(files: OutputFile[]): void {
  for (const u of downloadUrls) URL.revokeObjectURL(u);
  downloadUrls = [];
  const ul = $('downloads');
  ul.textContent = '';
  const wanted = files.filter((f) => /report\.json$|lung_mask\.nii\.gz$|infection\.nii\.gz$|contact|sheet/i.test(f.name));
  const rest = files.filter((f) => !wanted.includes(f));
  for (const f of [...wanted, ...rest]) {
    const url = URL.createObjectURL(new Blob([f.bytes as BlobPart], { type: f.name.endsWith('.json') ? 'application/json' : f.name.endsWith('.png') ? 'image/png' : 'application/octet-stream' }));
    downloadUrls.push(url);
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = url;
    a.download = f.name.replace(/\//g, '_');
    a.textContent = f.name;
    li.append(a, ` (${(f.bytes.length / 1024).toFixed(f.bytes.length < 10240 ? 1 : 0)} KiB)`);
    ul.append(li);
  }
}

function makeViewer(): Viewer {
  const v = new Viewer($('viewer') as HTMLCanvasElement);
  v.onMove = (r) => {
    const hu = r.hu === null ? 'n/a' : `${Math.round(r.hu)} HU`;
    const lung = r.lung === null ? '' : r.lung > 0 ? ', in lung' : ', outside lung';
    const inf = r.infection === null ? '' : `, infection p ${r.infection.toFixed(2)}`;
    $('readout').textContent = `slice ${r.slice} · voxel ${r.vox.join(', ')} · ${r.mm.map((x) => x.toFixed(1)).join(', ')} mm · ${hu}${lung}${inf}`;
    chart?.setCurrent(r.slice);
  };
  return v;
}

// ---- input -----------------------------------------------------------------------------------------------

/**
 * Walks dropped directory entries (a dropped folder arrives as one FileSystemDirectoryEntry) into files with their
 * paths inside the folder, as the folder dialog gives them ('study/series1/IM0001').
 */
async function filesOfEntries(entries: FileSystemEntry[]): Promise<InputFile[]> {
  const out: InputFile[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
      out.push({ path: prefix + entry.name, file });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, '');
  return out;
}

/**
 * What a drop holds, read while the drop event runs (its DataTransfer is emptied afterwards): the file system
 * entries when the browser gives one for every item (a dropped folder needs them), else the plain file list. A
 * DataTransfer made by a script (or some browsers' drops) has no entries (`webkitGetAsEntry()` gives null), and
 * its `files` are then the whole drop.
 */
function dropped(dt: DataTransfer): Promise<InputFile[]> {
  const items = Array.from(dt.items ?? []).filter((i) => i.kind === 'file');
  const entries = items.map((i) => (typeof i.webkitGetAsEntry === 'function' ? i.webkitGetAsEntry() : null));
  if (items.length > 0 && entries.every((e) => e !== null)) return filesOfEntries(entries as FileSystemEntry[]);
  return Promise.resolve(fromFileList(dt.files));
}

function fromFileList(list: FileList | null): InputFile[] {
  return Array.from(list ?? []).map((f) => ({ path: f.webkitRelativePath || f.name, file: f }));
}

function take(files: InputFile[]): void {
  const w = files.filter((f) => /\.safetensors$/i.test(f.path));
  const scans = files.filter((f) => !/\.safetensors$/i.test(f.path) && !/(^|\/)\.[^/]*$/.test(f.path));
  if (w.length === 1) setWeights(w[0]!);
  if (scans.length) start({ type: 'analyze', files: scans });
  else if (!w.length) banner('error', 'Nothing to analyse: no files were given.');
}

function setWeights(w: InputFile | undefined): void {
  weights = w;
  $('weights-name').textContent = w ? w.path : BUNDLED_WEIGHTS_NAME;
  $('weights-reset').hidden = !w;
}

function wire(): void {
  const drop = $('drop');
  for (const type of ['dragenter', 'dragover'] as const)
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
      drop.classList.add('over');
    });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const dt = e.dataTransfer;
    if (!dt) return;
    void dropped(dt).then(take, (err) => banner('error', `The dropped files could not be read: ${(err as Error).message}`));
  });
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => e.preventDefault());
  const pickFiles = $('pick-files') as HTMLInputElement;
  drop.addEventListener('click', () => pickFiles.click());
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      pickFiles.click();
    }
  });
  for (const id of ['pick-files', 'pick-folder']) {
    const input = $(id) as HTMLInputElement;
    input.addEventListener('change', () => {
      take(fromFileList(input.files));
      input.value = '';
    });
  }
  const pw = $('pick-weights') as HTMLInputElement;
  pw.addEventListener('change', () => {
    const f = fromFileList(pw.files)[0];
    if (f) setWeights(f);
    pw.value = '';
  });
  $('weights-reset').addEventListener('click', () => setWeights(undefined));
  $('weights-name').textContent = BUNDLED_WEIGHTS_NAME;
  $('sample').addEventListener('click', () => start({ type: 'sample' }));
  $('cancel').addEventListener('click', () => {
    if (running !== null) send({ type: 'cancel', id: running });
  });
  ($('series') as HTMLSelectElement).addEventListener('change', (e) => {
    if (lastFiles.length) start({ type: 'analyze', files: lastFiles, series: (e.target as HTMLSelectElement).value });
  });
  $('layout').addEventListener('change', (e) => viewer?.setLayout((e.target as HTMLSelectElement).value as Layout));
  $('window').addEventListener('change', (e) => viewer?.setWindow((e.target as HTMLSelectElement).value as WindowName));
  for (const which of ['lung', 'infection'] as const) {
    const show = $(`show-${which}`) as HTMLInputElement;
    show.addEventListener('change', () => viewer?.setOverlay(which, { visible: show.checked }));
    $(`${which}-cmap`).addEventListener('change', (e) => viewer?.setOverlay(which, { colormap: (e.target as HTMLSelectElement).value }));
    $(`${which}-opacity`).addEventListener('input', (e) => viewer?.setOverlay(which, { opacity: Number((e.target as HTMLInputElement).value) }));
  }
  document.addEventListener('keydown', (e) => {
    const t = e.target as HTMLElement;
    if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName) || !viewer || $('result').hidden) return;
    const cycle = (id: string) => {
      const s = $(id) as HTMLSelectElement;
      s.selectedIndex = (s.selectedIndex + 1) % s.options.length;
      s.dispatchEvent(new Event('change'));
    };
    const toggle = (id: string) => {
      const c = $(id) as HTMLInputElement;
      c.checked = !c.checked;
      c.dispatchEvent(new Event('change'));
    };
    switch (e.key) {
      case 'ArrowUp':
      case 'PageUp':
        viewer.step(1);
        break;
      case 'ArrowDown':
      case 'PageDown':
        viewer.step(-1);
        break;
      case 'l':
      case 'L':
        toggle('show-lung');
        break;
      case 'i':
      case 'I':
        toggle('show-infection');
        break;
      case 'w':
      case 'W':
        cycle('window');
        break;
      case 'v':
      case 'V':
        cycle('layout');
        break;
      default:
        return;
    }
    e.preventDefault();
  });
}

wire();
if (!navigator.gpu) noWebGpu();
else send({ type: 'probe' });
(window as unknown as { covidctReady: boolean }).covidctReady = true;
