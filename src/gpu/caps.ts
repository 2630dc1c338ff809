/** What kernels may count on from an adapter (limits, features, subgroup sizes) and the precision asked for. */

/** What the GPU side of an op may look at to pick kernels (limits, features). */
export interface GpuCaps {
  limits: GPUSupportedLimits;
  features: ReadonlySet<string>;
  subgroupMinSize: number;
  subgroupMaxSize?: number;
  /**
   * 'f16': pointwise convolutions may round their GEMM operands to f16 and run them on the matrix units (f32
   * accumulation; conv2d's takesMmaPath says which); only where {@link f16MatmulSupport}
   * says the adapter can. Default 'f32'.
   */
  precision?: 'f32' | 'f16';
  /**
   * Which tile shapes the conv2d and depthwise kernels may pick (a compile option, CompileOptions.tiles):
   * 'auto' (all GPU tiles; the default on a GPU), 'legacy' (neither conv2d's 32 x 128 `mid` tile and K split nor
   * depthwise's 32 x 32 tile) or 'software' (conv2d's, depthwise's and the squeeze-excite FCs' DIRECT kernels without
   * workgroup memory, made for the CPU-run adapters; the default on SwiftShader and lavapipe, {@link defaultTilePolicy}). Results agree within the ops'
   * tolerances whichever is picked (every tile is tested against the CPU references).
   */
  tiles?: TilePolicy;
}

/** The tile policies ({@link GpuCaps.tiles}). */
export const TILE_POLICIES = ['auto', 'legacy', 'software'] as const;
/** A tile policy ({@link GpuCaps.tiles}). */
export type TilePolicy = (typeof TILE_POLICIES)[number];

/**
 * The SIMD width a CPU-run adapter runs a workgroup at, in f32 lanes: its fixed subgroup size (lavapipe: its
 * LP_NATIVE_VECTOR_WIDTH / 32, 4 to 16; SwiftShader: 4), else 4. The software kernels size their workgroups to it,
 * so that a workgroup is one SIMD group (a smaller one leaves lanes idle, a larger one loops over groups).
 */
export function simdLanes(caps: Pick<GpuCaps, 'subgroupMinSize' | 'subgroupMaxSize'>): number {
  const L = caps.subgroupMinSize;
  const fixed = caps.subgroupMaxSize === undefined || caps.subgroupMaxSize === L;
  return fixed && L >= 4 && L <= 64 && (L & (L - 1)) === 0 ? L : 4;
}

/** The tile policy a compile gets when none is given: 'software' on a software adapter (SwiftShader, lavapipe), else 'auto'. */
export function defaultTilePolicy(gpu: { isSoftware?: boolean }): TilePolicy {
  return gpu.isSoftware ? 'software' : 'auto';
}

/**
 * Whether the adapter can run the f16 matrix-unit conv kernel (kernels/conv2d_mma.wgsl): shader-f16, subgroups,
 * chromium-experimental-subgroup-matrix (Dawn: allow_unsafe_apis; on NVIDIA also vulkan_enable_f16_on_nvidia) and
 * a fixed subgroup size of 32. Returns null when it can, else what is missing. The kernel also needs the
 * 16 x 16 x 16 f16 -> f32 matrix configuration (NVIDIA's); an adapter without it fails at pipeline creation with
 * a KernelCompileError.
 */
export function f16MatmulSupport(caps: Pick<GpuCaps, 'features' | 'subgroupMinSize' | 'subgroupMaxSize'>): string | null {
  const missing = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'].filter((f) => !caps.features.has(f));
  if (missing.length) return `missing feature${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
  if (caps.subgroupMinSize !== 32 || caps.subgroupMaxSize !== 32) return `subgroup size ${caps.subgroupMinSize}..${caps.subgroupMaxSize ?? '?'}, the kernel needs exactly 32`;
  return null;
}

/**
 * The GpuCaps that ops see for a device and a precision. Asking for 'f16' where {@link f16MatmulSupport} says the
 * adapter cannot throws `makeError(message)`, the message naming the adapter and what is missing; so does a tile
 * policy other than 'auto', 'legacy' or 'software'.
 */
export function capsFor(
  gpu: Pick<GpuCaps, 'limits' | 'features' | 'subgroupMinSize' | 'subgroupMaxSize'> & { adapterName: string },
  precision: 'f32' | 'f16',
  makeError: (message: string) => Error = (m) => new Error(m),
  tiles: TilePolicy = 'auto',
): GpuCaps {
  if (!(TILE_POLICIES as readonly string[]).includes(tiles)) throw makeError(`tile policy must be 'auto', 'legacy' or 'software', got '${String(tiles)}'`);
  if (precision === 'f16') {
    const missing = f16MatmulSupport(gpu);
    if (missing) throw makeError(`precision 'f16' is not available on ${gpu.adapterName}: ${missing} (on NVIDIA through Dawn, pass the toggles enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia)`);
  }
  return { limits: gpu.limits, features: gpu.features, subgroupMinSize: gpu.subgroupMinSize, subgroupMaxSize: gpu.subgroupMaxSize, precision, tiles };
}
