// Builds dist/ of @dhta/hamming: tsc compiles the search's sources (packages/kernels/src/hamming, entry
// points lib.ts and node.ts) to ES2022 modules and .d.ts files (tsconfig.build.json). Then:
// - the declarations' relative imports get .js extensions (tsc rewrites them in the JavaScript only), and
//   the base64 constant of the WebAssembly module is declared as a string rather than its 7 KB literal;
// - the portable entry point is checked: nothing that dist/lib.js imports, directly or not, may import a
//   Node module or anything outside dist/ (node: specifiers belong to dist/node.js alone), so the package
//   bundles for a browser.
// Run by `pnpm build` and by `pnpm pack` (prepack).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

const files = readdirSync(dist);
// import/export ... from 'x' (also over several lines), import 'x', and dynamic import('x').
const specifier = /(^(?:import|export)\b[^'"]*?\bfrom\s*|^import\s*|\bimport\(\s*)(['"])([^'"]+)\2/gm;

for (const name of files.filter((f) => f.endsWith('.d.ts'))) {
  const path = join(dist, name);
  const text = readFileSync(path, 'utf8');
  const out = text
    .replace(specifier, (all, head, quote, spec) =>
      spec.startsWith('.') && spec.endsWith('.ts') ? `${head}${quote}${spec.slice(0, -3)}.js${quote}` : all,
    )
    // A constant's declaration carries its value as a literal type: the embedded WebAssembly (base64) once
    // more. A string is all a user needs to know.
    .replace(/^(export declare const \w+) = "[A-Za-z0-9+/=]{256,}";$/gm, '$1: string;');
  if (out !== text) writeFileSync(path, out);
}

/** Static and dynamic import specifiers of a compiled module. */
function importsOf(path) {
  return [...readFileSync(path, 'utf8').matchAll(specifier)].map((m) => m[3]);
}

const problems = [];
for (const name of files.filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'))) {
  for (const spec of importsOf(join(dist, name))) {
    if (spec.startsWith('.') && (!spec.startsWith('./') || spec.includes('/', 2) || !spec.endsWith('.js'))) {
      problems.push(`${name} imports ${spec}: expected a sibling module ending in .js`);
    }
  }
}
const seen = new Set();
const pending = ['lib.js'];
while (pending.length) {
  const name = pending.pop();
  if (seen.has(name)) continue;
  seen.add(name);
  for (const spec of importsOf(join(dist, name))) {
    if (spec.startsWith('./')) pending.push(spec.slice(2));
    else problems.push(`${name} (reached from lib.js, the portable entry point) imports ${spec}`);
  }
}
if (problems.length) {
  console.error(`build: the compiled package is not portable:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `build: ${relative(process.cwd(), dist) || 'dist'}: ${files.length} files; lib.js reaches ${seen.size} modules, none of Node`,
);
