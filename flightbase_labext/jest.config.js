// Unit tests of the front end's logic (no JupyterLab runtime): ts-jest compiles
// the TypeScript to CommonJS; the request helper is replaced by a request table.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: { module: 'commonjs', esModuleInterop: true, strict: true, types: ['jest'] }, diagnostics: { warnOnly: false } }]
  }
};
