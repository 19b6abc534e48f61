// crier's version, as package.json says (test/version.test.ts keeps the two equal): what
// `crier --version` prints and what a worker registers in crier.registered_workers.
export const version = '0.1.0';
