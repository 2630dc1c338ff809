// The browser test's bundle: the main entry and covidct/testing together (the page uses demoNet and the seeded
// random inputs, which live in the testing subpath).
export * from '../src/index.js';
export * from '../src/testing.js';
