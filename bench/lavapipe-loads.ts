/**
 * What a load costs a compute shader on a CPU-run adapter (issue 37; docs/performance.md, "What a load costs on
 * lavapipe"). llvmpipe runs a workgroup's invocations as SIMD lanes; how it compiles a load depends on whether the
 * address is the same in every lane (NIR's divergence analysis) and on the kind of buffer:
 * - a storage-buffer load whose address differs per lane becomes a loop over the lanes, each with its bounds check;
 * - one whose address is the same in every lane becomes one scalar load, broadcast;
 * - a uniform-buffer load whose address differs per lane becomes a gather without branches.
 * Each variant below runs the same loop of ITERS steps per invocation (a load and a multiply-add, four independent
 * accumulators) in workgroups of one SIMD group; `fma` has no load (the arithmetic alone: the baseline of the
 * last column), `fma_only` not even that arithmetic, and `broadcast` takes its
 * value from another lane (subgroupBroadcast) instead of memory. The figure is the process's CPU time (user +
 * system, the driver's threads included) per lane-step, the best of a few tries, so what it measures is the cost of
 * the load kind relative to the multiply-add it feeds.
 *
 *   npx vite-node --config vitest.config.ts bench/lavapipe-loads.ts -- [--software lavapipe|swiftshader] [--tries 3]
 *       [--dawn-flags enable-dawn-features=allow_unsafe_apis,disable_robustness]
 */
import { createGpu, parseDawnFlags } from '../src/gpu/device.js';
import { settle } from '../src/gpu/wait.js';
import { benchDriverMessages, argValue, softwareArg } from './driver.js';

const software = softwareArg('lavapipe');
const tries = Number(argValue('tries', '3'));
const dawnFlags = process.argv.includes('--dawn-flags') ? parseDawnFlags(argValue('dawn-flags', '')) : [];
const gpu = await createGpu({ forceSoftware: software, dawnFlags, driverMessages: benchDriverMessages });
const device = gpu.device;
const L = gpu.subgroupMaxSize;
const ITERS = 4096;
const WORKGROUPS = 512;
const N = 1 << 16; // floats in the source buffers (the uniform one holds 16 KiB: 4096 floats)

// The step's value v, by where it comes from (fma_throughput: its own shader, below). `i` is the loop index (the same in every lane), `l` the
// lane; every address stays inside its buffer without the driver's bounds check having to act.
const VARIANTS: Record<string, string> = {
  fma_only: 'let v = seed;',
  fma_throughput: 'THROUGHPUT',
  fma: 'let v = f32(i & 7u) * 0.125 + f32(l);',
  broadcast: 'let v = subgroupBroadcast(seed, 3u);',
  storage_uniform_address: 'let v = src[(i * 16u) & (N - 1u)];',
  storage_per_lane: 'let v = src[(i * 16u + l) & (N - 1u)];',
  read_only_uniform_address: 'let v = srcr[(i * 16u) & (N - 1u)];',
  read_only_per_lane: 'let v = srcr[(i * 16u + l) & (N - 1u)];',
  storage_per_lane_vec4: 'let q = src4[((i * 16u + l) & (N - 1u)) >> 2u]; let v = q.x + q.y + q.z + q.w;',
  uniform_buffer_per_lane: 'let q = ub[(i * 4u + l) & 1023u]; let v = q.x;',
  uniform_buffer_per_lane_vec4: 'let q = ub[(i * 4u + l) & 1023u]; let v = q.x + q.y + q.z + q.w;',
  texture_per_lane: 'let v = textureLoad(tex1, vec2<u32>((i * 16u + l) & 255u, (i >> 4u) & 63u), 0).x;',
  texture_per_lane_vec4:
    'let q = textureLoad(tex4, vec2<u32>((i * 16u + l) & 63u, (i >> 2u) & 63u), 0); let v = q.x + q.y + q.z + q.w;',
  workgroup_per_lane: 'let v = wg[(i * 16u + l) & 1023u];',
  workgroup_per_lane_vec4: 'let q = wg4[(i * 4u + l) & 255u]; let v = q.x + q.y + q.z + q.w;',
};

/** The multiply-add's throughput: 16 independent accumulators, no load (a step is one multiply-add). */
const THROUGHPUT = /* wgsl */ `
enable subgroups;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) l: u32) {
  let v = f32(l) * 0.5 + f32(wid.x);
  var a = array<vec4<f32>, 4>();
  for (var i = 0u; i < ITERSu; i += 16u) {
    a[0] = fma(a[0], vec4<f32>(0.999), vec4<f32>(v));
    a[1] = fma(a[1], vec4<f32>(0.999), vec4<f32>(v));
    a[2] = fma(a[2], vec4<f32>(0.999), vec4<f32>(v));
    a[3] = fma(a[3], vec4<f32>(0.999), vec4<f32>(v));
  }
  out[wid.x * WGu + l] = dot(a[0] + a[1] + a[2] + a[3], vec4<f32>(1.0));
}`;

function shader(body: string): string {
  if (body === 'THROUGHPUT') return THROUGHPUT.replaceAll('WG', String(L)).replaceAll('ITERS', String(ITERS));
  return /* wgsl */ `
enable subgroups;
const N: u32 = ${N}u;
@group(0) @binding(0) var<storage, read_write> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> src4: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> ub: array<vec4<f32>, 1024>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> srcr: array<f32>;
@group(0) @binding(5) var tex1: texture_2d<f32>;
@group(0) @binding(6) var tex4: texture_2d<f32>;
var<workgroup> wg: array<f32, 1024>;
var<workgroup> wg4: array<vec4<f32>, 256>;
@compute @workgroup_size(${L})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) l: u32) {
  let seed = f32(l) * 0.5 + f32(wid.x);
  ${body.includes('wg') ? `for (var k = l; k < 1024u; k += ${L}u) { wg[k] = f32(k % 13u) * 0.25; }
  for (var k = l; k < 256u; k += ${L}u) { wg4[k] = vec4<f32>(f32(k % 5u)); }
  workgroupBarrier();` : ''}
  var a0 = 0.0; var a1 = 0.0; var a2 = 0.0; var a3 = 0.0;
  for (var i = 0u; i < ${ITERS}u; i += 4u) {
    { ${body} a0 = fma(a0, 0.999, v); }
    { let i = i + 1u; ${body} a1 = fma(a1, 0.999, v); }
    { let i = i + 2u; ${body} a2 = fma(a2, 0.999, v); }
    { let i = i + 3u; ${body} a3 = fma(a3, 0.999, v); }
  }
  out[wid.x * ${L}u + l] = a0 + a1 + a2 + a3;
}`;
}

const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
const src = device.createBuffer({ size: N * 4, usage });
const src4 = device.createBuffer({ size: N * 4, usage }); // the same values, its own buffer (writable bindings may not alias)
const values = new Float32Array(N).map((_, k) => (k % 13) * 0.25);
device.queue.writeBuffer(src, 0, values);
device.queue.writeBuffer(src4, 0, values);
const srcR = device.createBuffer({ size: N * 4, usage });
device.queue.writeBuffer(srcR, 0, values);
const ub = device.createBuffer({ size: 1024 * 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
device.queue.writeBuffer(ub, 0, new Float32Array(4096).map((_, k) => (k % 7) * 0.5));
const out = device.createBuffer({ size: WORKGROUPS * L * 4, usage: GPUBufferUsage.STORAGE });
// r32float 256 x 64 and rgba32float 64 x 64 (the same 16 Ki floats), read with textureLoad
const texture = (format: GPUTextureFormat, width: number, channels: number): GPUTextureView => {
  const t = device.createTexture({ size: [width, 64], format, usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST });
  device.queue.writeTexture({ texture: t }, values.subarray(0, width * 64 * channels), { bytesPerRow: width * channels * 4 }, [width, 64]);
  return t.createView();
};
const tex1 = texture('r32float', 256, 1);
const tex4 = texture('rgba32float', 64, 4);

console.log(`adapter: ${gpu.adapterName}; ${L} lanes a workgroup, ${WORKGROUPS} workgroups x ${ITERS} steps; CPU time per lane-step`);
// One explicit layout for every variant ('auto' would leave out the bindings a variant does not use).
const storage = (binding: number): GPUBindGroupLayoutEntry => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } });
const bgl = device.createBindGroupLayout({
  entries: [storage(0), storage(1), { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } }, storage(3),
    { binding: 4, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } },
    { binding: 5, visibility: GPUShaderStage.COMPUTE, texture: { sampleType: 'unfilterable-float' } },
    { binding: 6, visibility: GPUShaderStage.COMPUTE, texture: { sampleType: 'unfilterable-float' } }],
});
const layout = device.createPipelineLayout({ bindGroupLayouts: [bgl] });
const rows: { name: string; ns: number }[] = [];
for (const [name, body] of Object.entries(VARIANTS)) {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: shader(body) });
  const pipeline = await device.createComputePipelineAsync({ layout, compute: { module, entryPoint: 'main' } });
  const bind = device.createBindGroup({
    layout: bgl,
    entries: [...[src, src4, ub, out, srcR].map((buffer, binding) => ({ binding, resource: { buffer } })),
      { binding: 5, resource: tex1 }, { binding: 6, resource: tex4 }],
  });
  const run = async (): Promise<number> => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(WORKGROUPS);
    pass.end();
    const t0 = process.cpuUsage();
    device.queue.submit([enc.finish()]);
    await settle(gpu, device.queue.onSubmittedWorkDone());
    const t = process.cpuUsage(t0);
    return (t.user + t.system) * 1e3; // ns
  };
  await run(); // compile and warm
  const error = await device.popErrorScope();
  if (error) throw new Error(`variant ${name}: ${error.message}`);
  let best = Infinity;
  for (let t = 0; t < tries; t++) best = Math.min(best, await run());
  rows.push({ name, ns: best / (WORKGROUPS * L * ITERS) });
}
const base = rows.find((r) => r.name === 'fma')!.ns;
console.log('| variant | CPU ns per lane-step | against fma alone |');
console.log('| --- | --- | --- |');
for (const r of rows) console.log(`| ${r.name} | ${r.ns.toFixed(3)} | ${(r.ns / base).toFixed(1)}x |`);
gpu.device.destroy();
process.exit(0);
