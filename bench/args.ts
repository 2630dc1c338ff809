/** The bench's command line: options and help text (bench/bench.ts runs it). */
import { EFFICIENTNET_VARIANTS, type EfficientNetVariant } from '../src/models/efficientnet.js';
import { DEFAULT_OPTIONS, STAGES, type BenchOptions, type StageName } from './core.js';
import { PEERS, parseTorchModes, type PeerName } from './peers.js';
import { parseDawnFlags, parseSoftwareOption } from '../src/gpu/device.js';

export const HELP = `covidct bench: time the engine's stages on the WebGPU adapter (and optionally peers)

  node dist/bench.js [options]          (npm run bench -- [options])

  --size N | HxW[,HxW...]   slice size(s) (default 512)
  --batch LIST              batch sizes (default 1,4,16)
  --stages LIST             stage1,stage2,pipeline (default all); 'none' for only --model
  --model LIST              also bench bare torchvision EfficientNets, e.g. efficientnet_b7
  --config default|tiny     model config (default: B0 GR-U-Net + B7 classifier)
  --repeats R               timed runs after the first run and warmup (default ${DEFAULT_OPTIONS.repeats})
  --warmup W                untimed runs after the first run (default ${DEFAULT_OPTIONS.warmup})
  --precision f32|f16       f16: pointwise convolutions with f16 operands on the matrix units (needs shader-f16,
                            subgroups and chromium-experimental-subgroup-matrix; reported as not available elsewhere)
  --storage f32|f16         activation storage (default: the precision); f16 keeps the activations between layers
                            as packed f16 where the kernels can, with f32 arithmetic, on any adapter
  --tiles auto|legacy|software  kernel tiles the engine may pick (default software on a software adapter,
                            else auto; legacy: not conv2d's 32x128 nor depthwise's 32x32; software: conv2d
                            and depthwise without workgroup memory, for CPU-run adapters)
  --profile                 per-kernel GPU times (timestamp queries), by op and by node, with roofline shares
  --peak-gflops X           roofline compute ceiling (default: H100 figure on an H100, else measured)
  --peak-gbs X              roofline bandwidth ceiling (same)
  --top N                   rows of the by-node table to print (default 15)
  --peers LIST              torch (PyTorch CPU, /usr/bin/python3), torch-cuda (PyTorch on CUDA),
                            ort (ONNX Runtime Web, WebGPU provider)
  --torch-modes LIST        the PyTorch peers' modes, each reported and compared on its own row:
                            f32 (NCHW, TF32 off), tf32-cl (TF32 on, channels-last; CUDA only),
                            fp16-cl (module.half(), channels-last), bf16-cl (bfloat16, channels-last)
                            (default: torch-cuda f32,tf32-cl,fp16-cl; torch f32)
  --peer-timeout S          seconds per peer process (default 1800)
  --python PATH             Python with torch + torchvision for the peers (default /usr/bin/python3)
  --threads N               CPU threads of both sides: lavapipe's LP_NUM_THREADS (unless set) and PyTorch CPU's
                            (default: Mesa's one per core; PyTorch 2)
  --host-wait sleep|spin    how Node's thread waits for the adapter: sleep between event-loop turns (default on a
                            software adapter) or spin through dawn.node's polling (default on a GPU); for A/B runs
  --software[=DRIVER]       force a software driver: lavapipe, else SwiftShader; or DRIVER (lavapipe, swiftshader)
  --dawn-flags LIST         Dawn toggles, e.g. enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia
  --plan                    no device: FLOPs, minimum bytes and roofline bound per slice from the DispatchSpecs
                            (H100 limits; --precision f16 plans the matrix-unit path as on an H100 through Dawn)
  --json                    write the JSON report to stdout (progress goes to stderr)
  --out FILE                write the JSON report to FILE
  --help
`;

/** Parses the command line into bench options. */
export function parseBenchArgs(argv: string[]): { opts: Partial<BenchOptions>; json: boolean; out?: string; top: number; help: boolean; plan: boolean } {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}' (see --help)`);
    const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (v !== undefined) flags.set(k, v);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) flags.set(k, argv[++i]!);
    else flags.set(k, 'true');
  }
  const known = ['size', 'batch', 'stages', 'model', 'config', 'repeats', 'warmup', 'precision', 'storage', 'profile', 'peak-gflops', 'peak-gbs', 'top', 'peers', 'peer-timeout', 'software', 'dawn-flags', 'json', 'out', 'help', 'plan', 'python', 'tiles', 'torch-modes', 'threads', 'host-wait'];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`unknown option --${k} (see --help)`);
  const list = (k: string) => (flags.get(k) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const int = (k: string, min: number) => {
    const v = Number(flags.get(k));
    if (!Number.isInteger(v) || v < min) throw new Error(`--${k} must be an integer >= ${min}, got '${flags.get(k)}'`);
    return v;
  };
  const pos = (k: string) => {
    const v = Number(flags.get(k));
    if (!(v > 0) || !Number.isFinite(v)) throw new Error(`--${k} must be a positive number, got '${flags.get(k)}'`);
    return v;
  };
  const opts: Partial<BenchOptions> = {};
  if (flags.has('size'))
    opts.sizes = list('size').map((s) => {
      const m = /^(\d+)(?:x(\d+))?$/i.exec(s);
      if (!m) throw new Error(`--size takes N or HxW, got '${s}'`);
      const h = Number(m[1]);
      const w = m[2] ? Number(m[2]) : h;
      if (h < 8 || w < 8) throw new Error(`--size must be at least 8x8, got '${s}'`);
      return [h, w] as [number, number];
    });
  if (flags.has('batch'))
    opts.batches = list('batch').map((b) => {
      const v = Number(b);
      if (!Number.isInteger(v) || v < 1) throw new Error(`--batch takes positive integers, got '${b}'`);
      return v;
    });
  if (flags.has('stages')) {
    const s = list('stages');
    const bad = s.filter((x) => x !== 'none' && !(STAGES as readonly string[]).includes(x));
    if (bad.length) throw new Error(`--stages: unknown ${bad.join(', ')} (${STAGES.join(', ')}, none)`);
    opts.stages = s.filter((x) => x !== 'none') as StageName[];
  }
  if (flags.has('model')) {
    const m = list('model');
    const bad = m.filter((x) => !(EFFICIENTNET_VARIANTS as readonly string[]).includes(x));
    if (bad.length) throw new Error(`--model: unknown ${bad.join(', ')} (${EFFICIENTNET_VARIANTS.join(', ')})`);
    opts.models = m as EfficientNetVariant[];
  }
  if (flags.has('config')) {
    const c = flags.get('config');
    if (c !== 'default' && c !== 'tiny') throw new Error(`--config must be default or tiny, got '${c}'`);
    opts.config = c;
  }
  if (flags.has('repeats')) opts.repeats = int('repeats', 1);
  if (flags.has('warmup')) opts.warmup = int('warmup', 0);
  if (flags.has('precision')) {
    const p = flags.get('precision');
    if (p !== 'f32' && p !== 'f16') throw new Error(`--precision must be f32 or f16, got '${p}'`);
    opts.precision = p;
  }
  if (flags.has('storage')) {
    const p = flags.get('storage');
    if (p !== 'f32' && p !== 'f16') throw new Error(`--storage must be f32 or f16, got '${p}'`);
    opts.storage = p;
  }
  if (flags.has('profile')) opts.profile = true;
  if (flags.has('tiles')) {
    const t = flags.get('tiles');
    if (t !== 'auto' && t !== 'legacy' && t !== 'software') throw new Error(`--tiles must be auto, legacy or software, got '${t}'`);
    opts.tiles = t;
  }
  if (flags.has('peak-gflops')) opts.peakGflops = pos('peak-gflops');
  if (flags.has('peak-gbs')) opts.peakGbs = pos('peak-gbs');
  if (flags.has('peers')) {
    const p = list('peers');
    const bad = p.filter((x) => !(PEERS as readonly string[]).includes(x));
    if (bad.length) throw new Error(`--peers: unknown ${bad.join(', ')} (${PEERS.join(', ')})`);
    opts.peers = p as PeerName[];
  }
  if (flags.has('torch-modes')) opts.torchModes = parseTorchModes(flags.get('torch-modes')!);
  if (flags.has('peer-timeout')) opts.peerTimeoutS = pos('peer-timeout');
  if (flags.has('software')) opts.software = parseSoftwareOption(flags.get('software'));
  if (flags.has('python')) opts.python = flags.get('python')!;
  if (flags.has('threads')) opts.threads = int('threads', 1);
  if (flags.has('host-wait')) {
    const w = flags.get('host-wait')!;
    if (w !== 'sleep' && w !== 'spin') throw new Error(`--host-wait takes sleep or spin, got '${w}'`);
    opts.hostWait = w;
  }
  if (flags.has('dawn-flags')) {
    opts.dawnFlags = parseDawnFlags(flags.get('dawn-flags')!);
  }
  const top = flags.has('top') ? int('top', 1) : 15;
  opts.profileTop = Math.max(40, top);
  const out = flags.get('out');
  return { opts, json: flags.has('json'), ...(out ? { out } : {}), top, help: flags.has('help'), plan: flags.has('plan') };
}
