// The CommonJS build (dist/cjs/), beside the ES module build tsc makes in dist/ (run that first: it
// type-checks, this only transpiles). Each file of src/ is transpiled on its own to CommonJS, and
// the ES build's declarations are copied beside it, so `require('crier')` and TypeScript's
// CommonJS resolutions (node10, node16) find code and types of the same format.
//
// import.meta does not exist in CommonJS: each use of `import.meta.url` becomes the URL of the
// module's ES twin in dist/, so that files found relative to a module (db/migrations) are found
// the same way from both builds.
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist/cjs');

function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

/** `import.meta.url` → the file URL of `esmTwin` (a path relative to the CommonJS module's folder). */
function importMetaUrl(esmTwin) {
  return (context) => {
    const f = context.factory;
    const visit = (node) => {
      if (
        ts.isPropertyAccessExpression(node) && node.name.text === 'url' &&
        ts.isMetaProperty(node.expression) && node.expression.keywordToken === ts.SyntaxKind.ImportKeyword
      ) {
        const call = (module, name, args) => f.createCallExpression(
          f.createPropertyAccessExpression(f.createCallExpression(f.createIdentifier('require'), undefined, [f.createStringLiteral(module)]), name),
          undefined, args);
        const path = call('node:path', 'join', [f.createIdentifier('__dirname'), f.createStringLiteral(esmTwin)]);
        return f.createPropertyAccessExpression(call('node:url', 'pathToFileURL', [path]), 'href');
      }
      if (ts.isMetaProperty(node)) throw new Error(`build-cjs: only import.meta.url is supported (${esmTwin})`);
      return ts.visitEachChild(node, visit, context);
    };
    return (file) => ts.visitNode(file, visit);
  };
}

rmSync(out, { recursive: true, force: true });
const options = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2022,
  esModuleInterop: true,
  rewriteRelativeImportExtensions: true,
  sourceMap: true,
  inlineSources: true,
};
for (const source of sources(join(root, 'src'))) {
  const rel = relative(root, source).replace(/\.ts$/, '.js');
  const target = join(out, rel);
  const esmTwin = relative(dirname(target), join(root, 'dist', rel));
  const { outputText, sourceMapText, diagnostics } = ts.transpileModule(readFileSync(source, 'utf8'), {
    compilerOptions: options,
    fileName: relative(dirname(target), source),
    reportDiagnostics: true,
    transformers: { before: [importMetaUrl(esmTwin)] },
  });
  if (diagnostics?.length) throw new Error(ts.formatDiagnostics(diagnostics, ts.createCompilerHost(options)));
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, outputText);
  // Point the map at the source file (transpileModule names only its base name); the source travels inline.
  writeFileSync(`${target}.map`, JSON.stringify({ ...JSON.parse(sourceMapText), sources: [relative(dirname(target), source)] }));
  cpSync(join(root, 'dist', rel.replace(/\.js$/, '.d.ts')), target.replace(/\.js$/, '.d.ts'));
}
writeFileSync(join(out, 'package.json'), '{ "type": "commonjs" }\n');
