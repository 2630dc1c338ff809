/**
 * Device acquisition: one entry point for Node (dawn.node, npm `webgpu`) and browsers (`navigator.gpu`).
 *
 * In Node with no hardware adapter, the engine falls back to SwiftShader when Debian's chromium package has
 * installed its Vulkan ICD, and says so: `GpuContext.adapterName` names the adapter and travels with every
 * result. With no adapter at all it throws a `GpuUnavailableError` that says what to install.
 */

/** Where Debian's chromium package installs SwiftShader's Vulkan ICD manifest. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

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
  powerPreference?: GPUPowerPreference;
  /** In Node, fall back to SwiftShader when no hardware adapter exists (default true). */
  allowSoftware?: boolean;
  /** Force SwiftShader even when a hardware adapter exists (tests use this for reproducibility). */
  forceSoftware?: boolean;
  /** Optional features to leave off even where the adapter has them (e.g. to test fallbacks). */
  disableFeatures?: string[];
}

/** A device with what the engine needs to know about it. */
export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  /** Human-readable adapter name, e.g. `google swiftshader (SwiftShader driver 5.0.0)`; put it on every result. */
  readonly adapterName: string;
  /** True for a CPU implementation (SwiftShader): its timings are not GPU timings. */
  readonly isSoftware: boolean;
  /** Features enabled on the device. */
  readonly features: ReadonlySet<string>;
  /** The device's limits (the adapter's maximum for the limits the engine uses). */
  readonly limits: GPUSupportedLimits;
  /** Subgroup size range reported by the adapter (0 when unknown). */
  readonly subgroupMinSize: number;
  readonly subgroupMaxSize: number;
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
  const name = 'webgpu';
  try {
    return (await import(/* @vite-ignore */ name)) as DawnModule;
  } catch (e) {
    throw new GpuUnavailableError(
      `The npm package 'webgpu' (dawn.node) could not be loaded (${(e as Error).message}). Install it with 'npm install webgpu'.`,
    );
  }
}

async function fileExists(path: string): Promise<boolean> {
  const fs = await import('node:fs');
  return fs.existsSync(path);
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

async function requestAdapterNode(opts: GpuOptions): Promise<GPUAdapter> {
  const dawn = await loadDawn();
  Object.assign(globalThis, dawn.globals);
  const flags = opts.dawnFlags ?? [];
  const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
  const request = async (): Promise<GPUAdapter | null> => {
    const gpu = dawn.create(flags);
    keepAlive.push(gpu);
    const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
    if (adapter) keepAlive.push(adapter);
    return adapter;
  };
  let adapter: GPUAdapter | null = null;
  if (!opts.forceSoftware) adapter = await request();
  if (!adapter && opts.allowSoftware !== false) {
    if (env.VK_ICD_FILENAMES === SWIFTSHADER_ICD) {
      adapter = await request();
    } else if (await fileExists(SWIFTSHADER_ICD)) {
      const previous = env.VK_ICD_FILENAMES;
      env.VK_ICD_FILENAMES = SWIFTSHADER_ICD; // read by the Vulkan loader when Dawn makes its instance
      adapter = await request();
      if (!adapter) {
        if (previous === undefined) delete env.VK_ICD_FILENAMES;
        else env.VK_ICD_FILENAMES = previous;
      }
    }
  }
  if (!adapter) {
    throw new GpuUnavailableError(
      'No WebGPU adapter found. dawn.node needs a Vulkan loader and driver: on Debian/Ubuntu install ' +
        "'libvulkan1' and a driver (your GPU vendor's Vulkan driver), or 'chromium' for its software SwiftShader " +
        `driver at ${SWIFTSHADER_ICD}, which the engine uses automatically when no GPU is present` +
        (opts.allowSoftware === false ? ' (software fallback is disabled by allowSoftware: false).' : '.'),
    );
  }
  return adapter;
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
  for (const key of WANTED_LIMITS) {
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
