/**
 * Turns whatever a run threw into one readable message for the page, with a kind the page words and styles by:
 * no WebGPU, a lost GPU, a scan too large for the GPU's limits, a file that is not a scan, an unsupported
 * transfer syntax or format, bad weights, a cancelled run. The readers' ScanError already names the file and the
 * problem in one line; the engine's errors name the limit or the device state. Matched by error name (not
 * instanceof), so errors from either bundle or a structured clone are recognised alike.
 * @module
 */
import type { ProblemKind } from './protocol.js';

/** Which browsers have WebGPU, and what to enable where it is off. Shown when `navigator.gpu` is missing. */
export const WEBGPU_HELP =
  'This browser has no WebGPU, which the analysis needs (it runs on this computer\'s GPU; the scan never leaves it). ' +
  'WebGPU is on by default in Chrome and Edge 113 or later on Windows, macOS and ChromeOS (and Chrome 121+ on Android), ' +
  'Safari 26 on macOS, iOS and iPadOS, and Firefox 141 or later on Windows. ' +
  'On Linux, Chrome and Chromium need it enabled: open chrome://flags/#enable-unsafe-webgpu (and #enable-vulkan) and restart; ' +
  'in Firefox on other systems set dom.webgpu.enabled in about:config (or use Firefox Nightly); ' +
  'in older Safari turn on Develop > Feature Flags > WebGPU. The page also needs a secure context (https or localhost).';

/** Shown beside the adapter's name when it is a software implementation. */
export const SOFTWARE_ADAPTER_NOTE =
  'This is a software GPU (the CPU emulating one): the analysis will run, but slowly (minutes for a small scan). ' +
  'A hardware adapter needs the browser\'s GPU acceleration on and a supported driver.';

/** An error of the page's own, with the kind it is shown as (a missing bundled file, say). */
export class PageError extends Error {
  override name = 'PageError';
  constructor(
    readonly kind: ProblemKind,
    message: string,
  ) {
    super(message);
  }
}

interface Described {
  kind: ProblemKind;
  message: string;
  detail?: string;
}

const str = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Maps a thrown value to a kind and a one-line message (plus the stack as detail, for the page's "details"). */
export function describeProblem(e: unknown, aborted: boolean): Described {
  const name = e instanceof Error || (typeof e === 'object' && e !== null && 'name' in e) ? String((e as { name: unknown }).name) : '';
  const message = str(e);
  const detail = e instanceof Error && e.stack ? e.stack : undefined;
  const withDetail = (kind: ProblemKind, msg: string): Described => (detail ? { kind, message: msg, detail } : { kind, message: msg });
  if (aborted || name === 'AbortError') return { kind: 'cancelled', message: 'Cancelled.' };
  if (name === 'PageError') return { kind: (e as PageError).kind, message };
  if (name === 'GpuUnavailableError') return withDetail('no-webgpu', `${message} ${WEBGPU_HELP}`);
  if (name === 'GpuLimitError') return withDetail('too-large', `This scan or model is too large for this GPU's limits: ${message}`);
  if (name === 'GpuDeviceError' || /device (was )?lost|device is lost|GPUDevice.*lost/i.test(message))
    return withDetail('gpu-lost', `The GPU stopped working during the analysis (${message}). The page will ask for a fresh device on the next run; if it happens again, close other GPU-heavy tabs or restart the browser.`);
  if (/maxStorageBufferBindingSize|maxBufferSize|maxComputeWorkgroups|exceeds the device|out of memory/i.test(message))
    return withDetail('too-large', `This scan or model is too large for this GPU's limits: ${message}`);
  // The readers' and loaders' errors are complete in one line: no stack.
  if (name === 'ScanError') {
    const kind = (e as { kind?: string }).kind;
    if (kind === 'unsupported' || kind === 'empty' || kind === 'unusable') return { kind, message };
    return { kind: 'not-a-scan', message };
  }
  if (name === 'VolumeError') return { kind: 'unusable', message };
  if (name === 'WeightsError' || name === 'SafetensorsError' || name === 'ConfigError') return { kind: 'weights', message: `The weights file cannot be used: ${message}` };
  return withDetail('internal', message || 'unknown error');
}
