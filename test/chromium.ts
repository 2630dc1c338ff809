// Headless Chromium for the browser tests: Debian's chromium (never a downloaded browser), driven by playwright-core.

/** Debian's chromium package. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * The flags for WebGPU on SwiftShader in headless Chromium. The fresh user data dir is passed as
 * launchPersistentContext's first argument (playwright-core refuses --user-data-dir in args). Chromium 156 (Debian)
 * needs only --enable-unsafe-webgpu for an adapter on Linux (without it: "No available adapters"); playwright-core
 * adds --no-sandbox and --enable-unsafe-swiftshader itself, and --use-webgpu-adapter=swiftshader pins the software
 * adapter on machines that have a GPU. No Vulkan feature flag is needed. The background-networking flags keep
 * Chromium from reaching out (the machine has no network).
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
