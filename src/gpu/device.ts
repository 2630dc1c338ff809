/**
 * Device acquisition: one entry point for Node (dawn.node, npm `webgpu`) and browsers (`navigator.gpu`).
 *
 * In Node the engine takes a hardware adapter first; without one, Mesa's lavapipe (package
 * `mesa-vulkan-drivers`, Mesa 24 or later: LLVM-compiled shaders with shader-f16), else SwiftShader when Debian's
 * chromium package has installed its Vulkan ICD. `GpuContext.adapterName` names the adapter and travels with
 * every result; `isSoftware` marks both software drivers. `forceSoftware` picks a software driver, by name if
 * wanted. With no adapter at all it throws a `GpuUnavailableError` that says what to install.
 */
import { captureNativeStderr, importDawn, pathExists } from '../host/node.js';

/** Where Debian's chromium package installs SwiftShader's Vulkan ICD manifest. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * Where Mesa installs lavapipe's Vulkan ICD manifest (Debian and Ubuntu: the first; other distributions name
 * it by architecture). The first that exists is used.
 */
export const LAVAPIPE_ICDS = [
  '/usr/share/vulkan/icd.d/lvp_icd.json',
  '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json',
  '/usr/share/vulkan/icd.d/lvp_icd.aarch64.json',
  '/usr/local/share/vulkan/icd.d/lvp_icd.json',
  '/etc/vulkan/icd.d/lvp_icd.json',
] as const;

/** The software Vulkan drivers the engine can use in Node, in the order it prefers them. */
export const SOFTWARE_DRIVERS = ['lavapipe', 'swiftshader'] as const;
/** A software Vulkan driver: Mesa's lavapipe (llvmpipe) or Google's SwiftShader (from Debian's chromium). */
export type SoftwareDriver = (typeof SOFTWARE_DRIVERS)[number];

/** What each software driver's adapter calls itself. */
const DRIVER_NAME: Record<SoftwareDriver, RegExp> = { lavapipe: /llvmpipe|lavapipe/i, swiftshader: /swiftshader/i };

/**
 * Reads a command-line `--software` value: absent gives false (hardware first), a bare flag (`'true'` or `''`)
 * any software driver (lavapipe, else SwiftShader), `lavapipe` or `swiftshader` that driver only.
 * @throws Error naming the value when it is none of these.
 */
export function parseSoftwareOption(value: string | undefined): boolean | SoftwareDriver {
  if (value === undefined) return false;
  if (value === 'true' || value === '') return true;
  if ((SOFTWARE_DRIVERS as readonly string[]).includes(value)) return value as SoftwareDriver;
  throw new Error(`--software takes no value or one of ${SOFTWARE_DRIVERS.join(', ')}, got '${value}'`);
}

/** Limits the engine asks for at the adapter's own maximum (the WebGPU defaults are far lower). */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxBindGroups',
] as const;

/** Optional features used when the adapter has them. */
const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'] as const;

/** Raised when no WebGPU adapter can be had; the message says what to install. */
export class GpuUnavailableError extends Error {
  override name = 'GpuUnavailableError';
}

/** Raised when the device is lost or a GPU operation fails; the result of that work is not usable. */
export class GpuDeviceError extends Error {
  override name = 'GpuDeviceError';
}

/** Options for {@link createGpu}. */
export interface GpuOptions {
  /** A `GPU` object to use instead of the platform's (e.g. `navigator.gpu`, or one made with dawn.node's `create`). */
  gpu?: GPU;
  /** Dawn toggles passed to dawn.node's `create()`, e.g. `enable-dawn-features=allow_unsafe_apis`. Node only. */
  dawnFlags?: string[];
  /** Adapter power preference. */
  powerPreference?: 'low-power' | 'high-performance';
  /** In Node, fall back to a software driver (lavapipe, else SwiftShader) when no hardware adapter exists (default true). */
  allowSoftware?: boolean;
  /**
   * Use a software driver even when a hardware adapter exists: `true` lavapipe, else SwiftShader; a name that
   * driver only (an error if it is not installed). Tests use this for reproducibility. Node only.
   */
  forceSoftware?: boolean | SoftwareDriver;
  /**
   * Set lavapipe's SIMD width to 512 bits and give it a shader cache of its own (default true; see
   * LAVAPIPE_VECTOR_WIDTH). Node only; a user's own LP_NATIVE_VECTOR_WIDTH is always left alone.
   */
  lavapipeDefaults?: boolean;
  /** Optional features to leave off even where the adapter has them (e.g. to test fallbacks). */
  disableFeatures?: string[];
  /**
   * 'adapter' (default): the device gets the adapter's maximum for the limits the engine uses; 'default': WebGPU's
   * default limits (128 MiB storage bindings, 256 MiB buffers), as a page that asks for nothing gets (tests of the
   * limit checks).
   */
  limits?: 'adapter' | 'default';
  /**
   * Node only. What Dawn and the Vulkan drivers print on the process's standard error while the adapters are
   * enumerated (Dawn's C++ log: on lavapipe always two lines, "maxDynamic...BuffersPerPipelineLayout artificially
   * reduced ...", which no toggle or limit avoids): left on standard error (default), or taken from it for the
   * length of that call (see captureNativeStderr in src/host/node.ts) and handed to this function, which may drop
   * them. The CLI shows them only with --debug.
   */
  driverMessages?: (text: string) => void;
  /**
   * Node only: let the host thread sleep between event-loop turns while it waits for the device's work (see
   * src/gpu/wait.ts). Default: on for a software adapter (lavapipe, SwiftShader: dawn.node's busy polling took
   * close to a core from them), off for a GPU. Ignored in browsers (always off).
   */
  sleepWhileWaiting?: boolean;
}

/** A device with what the engine needs to know about it. */
export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  /** Human-readable adapter name, e.g. `mesa software llvmpipe (Mesa 25.0.7 ...)`; put it on every result. */
  readonly adapterName: string;
  /** True for a CPU implementation (lavapipe, SwiftShader): its timings are not GPU timings. */
  readonly isSoftware: boolean;
  /** Features enabled on the device. */
  readonly features: ReadonlySet<string>;
  /** The device's limits (the adapter's maximum for the limits the engine uses). */
  readonly limits: GPUSupportedLimits;
  /** Subgroup size range reported by the adapter (0 when unknown). */
  readonly subgroupMinSize: number;
  readonly subgroupMaxSize: number;
  /**
   * Whether waits for this device's work let the host thread sleep between event-loop turns (src/gpu/wait.ts):
   * on for a software adapter in Node (where dawn.node's polling would otherwise take a core from the adapter's
   * own threads), off elsewhere. Absent: off.
   */
  readonly sleepWhileWaiting?: boolean;
  /** Resolves with a reason once the device is lost; `lostReason` holds it synchronously after that. */
  readonly lost: Promise<string>;
  lostReason: string | null;
  /** Uncaptured errors reported by the device since creation (validation, out-of-memory, internal). */
  readonly uncapturedErrors: string[];
  /** Destroys the device. */
  destroy(): void;
}

// Objects returned by dawn.node's create() must stay referenced while any adapter or device from them lives:
// if collected, dawn.node crashes the process. Keep every one we make for the life of the process.
const keepAlive: unknown[] = [];

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return !!p?.versions?.node;
}

async function loadDawn(): Promise<DawnModule> {
  try {
    return (await importDawn()) as DawnModule;
  } catch (e) {
    throw new GpuUnavailableError(
      `The npm package 'webgpu' (dawn.node) could not be loaded (${(e as Error).message}). Install it with 'npm install webgpu'.`,
    );
  }
}

async function firstExisting(paths: readonly string[]): Promise<string | null> {
  for (const p of paths) if (await pathExists(p)) return p;
  return null;
}

/** The ICD manifest of a software driver, or null when it is not installed. */
async function softwareIcd(driver: SoftwareDriver): Promise<string | null> {
  return firstExisting(driver === 'lavapipe' ? LAVAPIPE_ICDS : [SWIFTSHADER_ICD]);
}

function describeAdapter(adapter: GPUAdapter): { name: string; software: boolean } {
  const info = adapter.info;
  const parts = [info.vendor, info.architecture].filter((s) => s && s.length > 0);
  const device = info.device && info.device.length > 0 ? info.device : '';
  let name = parts.join(' ');
  if (device && !name.includes(device)) name = name ? `${name} ${device}` : device;
  if (info.description) name = name ? `${name} (${info.description})` : info.description;
  if (!name) name = 'unknown adapter';
  const software =
    /swiftshader|llvmpipe|lavapipe|warp|software/i.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`) ||
    (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return { name, software };
}

// The Vulkan loader's driver list: VK_DRIVER_FILES wins over the older VK_ICD_FILENAMES where both are set.
const DRIVER_ENV = ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES'] as const;

/**
 * lavapipe's SIMD width: 512 bits, 16 f32 lanes, subgroups of 16 (Mesa's own default is 256 where the CPU has
 * AVX2, 512 only when asked for). The software kernels are shaped for it: conv2d's subgroup kernel
 * (kernels/conv2d_sg.wgsl) shares each loaded input element among 16 lanes, and the depthwise, resize and
 * squeeze-excite kernels run one SIMD group per workgroup. Measured on the 2-core AVX-512 machine (2026-12-06,
 * docs/performance.md "lavapipe against PyTorch"): the tiny pipeline at 128 x 128, batch 4, about 1.8 times less
 * CPU per forward than the previous default (128 bits, 4 lanes, the DIRECT kernels), but LLVM's first compile of
 * its pipelines about 3 times more (50 s against 15 s of CPU, once: Mesa's cache keeps them). On a CPU without
 * AVX-512 LLVM splits the 512-bit vectors in two. llvmpipe reads the setting once per process, when the Vulkan
 * loader first loads it, so it is set before the first adapter request (every request loads every installed
 * driver) unless the user has set it.
 */
export const LAVAPIPE_VECTOR_WIDTH = '512';

/**
 * Points lavapipe at its settings before a request: LP_NATIVE_VECTOR_WIDTH (above) and, with it, Mesa's shader
 * cache in a folder of its own under the user's cache folder (Mesa's cache key does not include the width: code
 * compiled at one width was reused at the other; seen here). A user's own LP_NATIVE_VECTOR_WIDTH or
 * MESA_SHADER_CACHE_DIR is left alone.
 */
function lavapipeEnv(env: Record<string, string | undefined>): void {
  if (env.LP_NATIVE_VECTOR_WIDTH !== undefined) return;
  env.LP_NATIVE_VECTOR_WIDTH = LAVAPIPE_VECTOR_WIDTH;
  const home = env.XDG_CACHE_HOME || (env.HOME ? `${env.HOME}/.cache` : '');
  if (env.MESA_SHADER_CACHE_DIR === undefined && home) env.MESA_SHADER_CACHE_DIR = `${home}/covidct-lavapipe-${LAVAPIPE_VECTOR_WIDTH}`;
}

async function requestAdapterNode(opts: GpuOptions): Promise<GPUAdapter> {
  const dawn = await loadDawn();
  Object.assign(globalThis, dawn.globals);
  const flags = opts.dawnFlags ?? [];
  const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
  const request = async (): Promise<GPUAdapter | null> => {
    // Dawn makes its instance in create() and enumerates the adapters synchronously inside requestAdapter(): the
    // native log of both goes to opts.driverMessages when given.
    const ask = () => {
      const gpu = dawn.create(flags);
      keepAlive.push(gpu);
      return gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
    };
    let pending: Promise<GPUAdapter | null>;
    if (opts.driverMessages) {
      const { value, text } = await captureNativeStderr(ask);
      if (text) opts.driverMessages(text);
      pending = value;
    } else pending = ask();
    const adapter = await pending;
    if (adapter) keepAlive.push(adapter);
    return adapter;
  };
  // One driver only: the Vulkan loader reads these variables when Dawn makes its instance and enumerates the
  // adapters, so they are set for the request and restored after it (the device keeps working; seen here).
  const requestWithIcd = async (icd: string): Promise<GPUAdapter | null> => {
    const previous = DRIVER_ENV.map((k) => env[k]);
    for (const k of DRIVER_ENV) env[k] = icd;
    try {
      return await request();
    } finally {
      DRIVER_ENV.forEach((k, i) => {
        if (previous[i] === undefined) delete env[k];
        else env[k] = previous[i];
      });
    }
  };
  if (opts.lavapipeDefaults !== false) lavapipeEnv(env);
  const force = opts.forceSoftware ?? false;
  const tried: string[] = [];
  if (force === false) {
    // Whatever the loader finds: Dawn orders hardware adapters before CPU ones, so this is the GPU where there
    // is one, else lavapipe where a recent enough Mesa is installed.
    const adapter = await request();
    if (adapter && (opts.allowSoftware !== false || !describeAdapter(adapter).software)) return adapter;
    tried.push(adapter ? `the default adapter (${describeAdapter(adapter).name}) is software` : 'no adapter from the installed Vulkan drivers');
  }
  if (opts.allowSoftware !== false) {
    const drivers: readonly SoftwareDriver[] = typeof force === 'string' ? [force] : SOFTWARE_DRIVERS;
    for (const driver of drivers) {
      const icd = await softwareIcd(driver);
      if (!icd) {
        tried.push(`${driver}: not installed (no ${driver === 'lavapipe' ? LAVAPIPE_ICDS[0] : SWIFTSHADER_ICD})`);
        continue;
      }
      const adapter = await requestWithIcd(icd);
      if (adapter && DRIVER_NAME[driver].test(describeAdapter(adapter).name)) return adapter;
      tried.push(adapter ? `${driver}: ${icd} gave another adapter (${describeAdapter(adapter).name})` : `${driver}: Dawn found no usable adapter with ${icd}${driver === 'lavapipe' ? ' (Mesa older than 24?)' : ''}`);
    }
  }
  throw new GpuUnavailableError(
    'No WebGPU adapter found. dawn.node needs a Vulkan loader and driver: on Debian/Ubuntu install ' +
      "'libvulkan1' and a driver (your GPU vendor's Vulkan driver), or 'mesa-vulkan-drivers' (Mesa 24 or later; on " +
      "Debian 12 from bookworm-backports) for the software driver lavapipe, or 'chromium' for its software SwiftShader " +
      `driver at ${SWIFTSHADER_ICD} (bash scripts/install-deps.sh installs these)` +
      (opts.allowSoftware === false ? '; software drivers are disabled by allowSoftware: false' : '') +
      (tried.length ? `. Tried: ${tried.join('; ')}.` : '.'),
  );
}

/**
 * Splits a command-line list of Dawn toggles. `enable-dawn-features=a,b,disable-dawn-features=c` gives
 * `['enable-dawn-features=a,b', 'disable-dawn-features=c']`: an item without '=' continues the toggle before it.
 */
export function parseDawnFlags(list: string): string[] {
  const out: string[] = [];
  for (const item of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!item.includes('=') && out.length) out[out.length - 1] += `,${item}`;
    else out.push(item);
  }
  return out;
}

/**
 * Acquires an adapter and device. The device gets the adapter's own maximum for the limits the engine uses
 * and every optional feature it can use (shader-f16, subgroups, timestamp-query, subgroup-matrix).
 */
export async function createGpu(opts: GpuOptions = {}): Promise<GpuContext> {
  let adapter: GPUAdapter | null;
  if (opts.gpu) {
    adapter = await opts.gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
    if (!adapter) throw new GpuUnavailableError('The provided GPU object returned no adapter.');
  } else if (typeof navigator !== 'undefined' && (navigator as Navigator & { gpu?: GPU }).gpu && !isNode()) {
    adapter = await navigator.gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
    if (!adapter) throw new GpuUnavailableError('This browser exposes WebGPU but returned no adapter (is hardware acceleration disabled?).');
  } else if (isNode()) {
    adapter = await requestAdapterNode(opts);
  } else {
    throw new GpuUnavailableError('WebGPU is not available here: use a browser with WebGPU, or Node.js with the npm package webgpu.');
  }

  const disabled = new Set(opts.disableFeatures ?? []);
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter!.features.has(f) && !disabled.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const key of opts.limits === 'default' ? [] : WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[key];
    if (typeof v === 'number') requiredLimits[key] = v;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  } catch (e) {
    throw new GpuUnavailableError(`The adapter refused to create a device: ${(e as Error).message}`);
  }
  const { name, software } = describeAdapter(adapter);
  const uncapturedErrors: string[] = [];
  device.addEventListener('uncapturederror', (ev) => {
    uncapturedErrors.push((ev as GPUUncapturedErrorEvent).error.message);
  });
  const ctx: GpuContext = {
    device,
    adapter,
    adapterName: name,
    isSoftware: software,
    sleepWhileWaiting: isNode() ? (opts.sleepWhileWaiting ?? software) : false,
    features: new Set<string>([...device.features] as string[]),
    limits: device.limits,
    subgroupMinSize: (adapter.info as GPUAdapterInfo & { subgroupMinSize?: number }).subgroupMinSize ?? 0,
    subgroupMaxSize: (adapter.info as GPUAdapterInfo & { subgroupMaxSize?: number }).subgroupMaxSize ?? 0,
    lost: device.lost.then((info) => {
      const reason = `device lost (${info.reason}): ${info.message}`;
      ctx.lostReason = reason;
      return reason;
    }),
    lostReason: null,
    uncapturedErrors,
    destroy: () => device.destroy(),
  };
  keepAlive.push(device);
  return ctx;
}
