// Ablations of kernels/conv2d_sg.wgsl for `bench/kernels.ts --ablate` (docs/performance.md, "Inside conv2d_sg on
// lavapipe"): the kernel's source with parts taken out, to time what each part costs. Timing only: the outputs are wrong.

/** One part: the rewrite, and what must not be left of it. */
const PARTS: Record<string, { name: string; apply: (src: string) => string; left: RegExp }> = {
  b: {
    name: 'the broadcasts (each lane uses its own value)',
    apply: (src) => src.replaceAll('subgroupBroadcast(', 'abl_b(') + '\nfn abl_b(v: f32, l: u32) -> f32 { return v; }\n',
    left: /subgroupBroadcast\(/,
  },
  x: {
    name: 'the input loads',
    apply: (src) => {
      let out = src;
      if (out.includes('fn load_x(')) {
        out = out.replace(/\bload_x\(/g, 'abl_x(').replace('fn abl_x(', 'fn load_x(') +
          '\nfn abl_x(i: u32) -> f32 { return f32(i & 7u) + select(0.0, load_x(0u), i == 0xffffffffu); }\n';
      }
      if (out.includes('x4[')) {
        out = out.replace(/x4\[\(xbase \+ ci \* P\.HW\) \/ 4u\]/g, 'abl_x4(xbase + ci)') +
          '\nfn abl_x4(i: u32) -> vec4<f32> { return vec4<f32>(f32(i & 7u)) + select(vec4<f32>(0.0), x4[0], i == 0xffffffffu); }\n';
      }
      return out;
    },
    left: /x4\[\(xbase|^(?!fn (load_x|abl_x)).*\bload_x\((?!0u\))/m,
  },
  w: {
    name: 'the weight loads',
    apply: (src) => src.replace(/\bwp\[([^\]]+)\]/g, 'abl_w($1)') +
      '\nfn abl_w(i: u32) -> vec4<f32> { return vec4<f32>(f32(i & 3u)) + select(vec4<f32>(0.0), wp[0], i == 0xffffffffu); }\n',
    left: /\bwp\[(?!0\])/,
  },
};

/** The source without the functions the ablations append. */
function kernelBody(src: string): string {
  return src.split('\n').filter((l) => !/^fn abl_/.test(l)).join('\n').trimEnd();
}

/**
 * conv2d_sg's source with `what` taken out: `b` the broadcasts, `x` the input loads, `w` the weight loads, each
 * replaced by a value computed from the index (one load behind a condition that is never true keeps the binding in
 * use). Throws on an unknown letter, and where a part was not there or is still there after the rewrite (the kernel
 * changed since: an ablation that takes nothing out would time nothing).
 */
export function ablateConvSg(src: string, what: string): string {
  if (!/^[bxw]+$/.test(what)) throw new Error(`--ablate takes b, x and w (broadcasts, input loads, weight loads), got '${what}'`);
  let out = src;
  for (const letter of new Set(what)) {
    const part = PARTS[letter]!;
    const next = part.apply(out);
    const body = kernelBody(next);
    if (body === kernelBody(out) || part.left.test(body)) {
      throw new Error(`ablateConvSg: kernels/conv2d_sg.wgsl no longer has the shape the ablation of ${part.name} expects`);
    }
    out = next;
  }
  return out;
}
