/**
 * Pipeline cache. Key = kernel file + entry + sorted defines (shapes travel in uniforms, so every model size
 * shares pipelines). Compilation errors name the kernel and the defines.
 */
import { preprocessWgsl, type DefineValue } from '../wgsl/preprocess.js';
import { kernelSource } from '../wgsl/kernels.js';

/** Cache key of a pipeline. */
export function pipelineKey(kernel: string, entry: string, defines: Record<string, DefineValue>): string {
  const defs = Object.keys(defines)
    .sort()
    .map((k) => `${k}=${String(defines[k])}`)
    .join(',');
  return `${kernel}:${entry}:${defs}`;
}

/** Raised when a kernel fails to preprocess or compile. */
export class KernelCompileError extends Error {
  override name = 'KernelCompileError';
}

/** Expands a kernel file with its defines into WGSL text. */
export function kernelText(kernel: string, defines: Record<string, DefineValue>): string {
  const src = kernelSource(kernel);
  if (src === undefined) throw new KernelCompileError(`unknown kernel file kernels/${kernel}.wgsl`);
  return preprocessWgsl(src, defines, kernelSource, `${kernel}.wgsl`);
}

/** Compiles and caches compute pipelines for one device. */
export class PipelineCache {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  /** Pipelines compiled (cache misses) since creation. */
  compiled = 0;
  /** Milliseconds spent compiling (wall clock, including waits). */
  compileMs = 0;

  constructor(private readonly device: GPUDevice) {}

  /** Returns the pipeline for a kernel + entry + defines, compiling it on first use. */
  get(kernel: string, entry: string, defines: Record<string, DefineValue>): Promise<GPUComputePipeline> {
    const key = pipelineKey(kernel, entry, defines);
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.compile(kernel, entry, defines, key);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  /** Number of distinct pipelines held. */
  get size(): number {
    return this.pipelines.size;
  }

  /** The WGSL compiled for a kernel + defines (a subclass may rewrite it: the tests emulate matrix builtins so). */
  protected source(kernel: string, defines: Record<string, DefineValue>): string {
    return kernelText(kernel, defines);
  }

  private async compile(kernel: string, entry: string, defines: Record<string, DefineValue>, key: string): Promise<GPUComputePipeline> {
    const t0 = performance.now();
    const code = this.source(kernel, defines);
    const module = this.device.createShaderModule({ code, label: key });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) {
      const lines = code.split('\n');
      const detail = errors
        .map((m) => `  line ${m.lineNum}:${m.linePos}: ${m.message}\n    ${lines[m.lineNum - 1] ?? ''}`)
        .join('\n');
      throw new KernelCompileError(`kernels/${kernel}.wgsl (${key}) failed to compile:\n${detail}`);
    }
    try {
      const pipeline = await this.device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: entry }, label: key });
      this.compiled++;
      return pipeline;
    } catch (e) {
      throw new KernelCompileError(`kernels/${kernel}.wgsl (${key}): pipeline creation failed: ${(e as Error).message}`);
    } finally {
      this.compileMs += performance.now() - t0;
    }
  }
}
