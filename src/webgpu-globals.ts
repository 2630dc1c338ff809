/**
 * The WebGPU types the published declarations name (dist/types), declared as empty global interfaces so that a
 * project that imports covidct type-checks (`tsc --strict`) with nothing else installed: no @webgpu/types needed.
 *
 * Why empty interfaces and not a copy of @webgpu/types: interfaces merge. A project that has @webgpu/types (or a
 * TypeScript whose lib.dom declares WebGPU) gets the full types, merged with these without a conflict; a copy of
 * @webgpu/types would declare its type aliases and variables a second time ("Duplicate identifier") there, and would
 * have to follow its versions. Without @webgpu/types the objects are opaque: they can be held and passed back to
 * covidct; to use their members, install @webgpu/types. Add a name here when the public API starts to use it (the
 * packed-package test type-checks a fresh project against the package).
 * @module
 */
declare global {
  interface GPU {}
  interface GPUAdapter {}
  interface GPUDevice {}
  interface GPUSupportedLimits {}
  interface GPUBuffer {}
  interface GPUBindGroup {}
  interface GPUCommandEncoder {}
  interface GPUComputePassEncoder {}
  interface GPUComputePipeline {}
  interface GPUQuerySet {}
  /** Not WebGPU: the DOM's (and Node's) AbortSignal, for a project compiled with neither lib.dom nor @types/node. */
  interface AbortSignal {}
}
export {};
