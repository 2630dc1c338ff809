/**
 * What the page bundles: the weights file web/build.mjs copies next to the page (weights.safetensors) and the name
 * the report and the page give it. Kept apart from pipeline.ts so the page's own bundle (app.js) can show the name
 * without the engine.
 * @module
 */

/** The bundled weights, relative to the worker's own URL (so the page works from any folder). */
export const BUNDLED_WEIGHTS = 'weights.safetensors';

declare const __COVIDCT_BUNDLED_WEIGHTS__: string | undefined;

/**
 * The name the report and the page give the bundled weights: the file web/build.mjs copied to weights.safetensors
 * (by default the package's trained model, package.json covidct.defaultWeights), set at build time.
 */
export const BUNDLED_WEIGHTS_NAME = `${typeof __COVIDCT_BUNDLED_WEIGHTS__ === 'string' && __COVIDCT_BUNDLED_WEIGHTS__ ? __COVIDCT_BUNDLED_WEIGHTS__ : BUNDLED_WEIGHTS} (bundled with the page)`;
