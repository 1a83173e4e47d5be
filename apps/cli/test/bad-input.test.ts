// Bad command lines and bad input files, swept over every command (issue 15, "Clear messages, nothing left
// behind"): each case must exit nonzero with one `dhta: error...` line (and at most a `hint:` line), no stack
// trace, no raw JavaScript or Node message (a TypeError's text, an fs error code, a JSON.parse message), and
// nothing left behind where the outputs would go (no temporary file, no empty output folder, no lock).
// Each case is cheap: parse errors, missing or damaged files, or at most a few iterations of a tiny model.

import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { writeNpy, writeNpyFile } from '@dhta/kernels/hamming';
import { SeededRandom } from '@dhta/kernels/reference';
import { initWeights, saveBundle, smallCnn } from '@dhta/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, CLI } from './cli-helper.js';
import { writeIdx } from './idx-fixture.js';
import { makeRunFolder } from './report-fixture.js';

const root = mkdtempSync(join(tmpdir(), 'dhta-bad-input-'));
const cache = join(root, 'cache');
const bits = 16;

// ---------------------------------------------------------------------------------------------------------
// Paths of the fixtures (made in beforeAll; the case table only names them).

const model = join(root, 'model');
const idx = join(root, 'idx');
const data = `idx:${idx}`;
/** A regular file: an output path under it fails with ENOTDIR. */
const regular = join(root, 'regular-file');
const underFile = (name: string) => join(regular, name);
/** A path that cannot be created (/proc takes no new entries). */
const underProc = (name: string) => `/proc/dhta-bad-input-${process.pid}/${name}`;

const F = {
  missing: join(root, 'files', 'missing.npy'),
  dir: join(root, 'files', 'folder.npy'),
  empty: join(root, 'files', 'empty.npy'),
  random: join(root, 'files', 'random.npy'),
  json: join(root, 'files', 'json.npy'),
  text: join(root, 'files', 'text.npy'),
  badMagic: join(root, 'files', 'bad-magic.npy'),
  truncated: join(root, 'files', 'truncated.npy'),
  fortran: join(root, 'files', 'fortran.npy'),
  hugeShape: join(root, 'files', 'huge-shape.npy'),
  headerNotDict: join(root, 'files', 'header-not-dict.npy'),
  f64: join(root, 'files', 'x-f64.npy'),
  noChannel: join(root, 'files', 'x-no-channel.npy'),
  nan: join(root, 'files', 'x-nan.npy'),
  inf: join(root, 'files', 'x-inf.npy'),
  negative: join(root, 'files', 'x-negative.npy'),
  x1: join(root, 'files', 'x1.npy'),
  x2: join(root, 'files', 'x2.npy'),
  xEmpty: join(root, 'files', 'x-empty.npy'),
  wrongSize: join(root, 'files', 'x-32x32.npy'),
  t16: join(root, 'files', 't16.npy'),
  t16x3: join(root, 'files', 't16x3.npy'),
  t32: join(root, 'files', 't32.npy'),
  tF32: join(root, 'files', 't-f32.npy'),
  tTwo: join(root, 'files', 't-two.npy'),
  tZero: join(root, 'files', 't-zero.npy'),
  tRows: join(root, 'files', 't-rows.npy'),
  t4d: join(root, 'files', 't-4d.npy'),
  codes: join(root, 'files', 'codes.npy'),
  queries: join(root, 'files', 'queries.npy'),
  codesWide: join(root, 'files', 'codes-wide.npy'),
  codesI8: join(root, 'files', 'codes-int8.npy'),
  codesNone: join(root, 'files', 'codes-none.npy'),
  codes1d: join(root, 'files', 'codes-1d.npy'),
  idsF32: join(root, 'files', 'ids-f32.npy'),
  ids2d: join(root, 'files', 'ids-2d.npy'),
};

/** Model folders, each a copy of the good one with one thing wrong. */
const M = (name: string) => join(root, 'models', name);
/** Run folders for report, each a copy of a good one with one thing wrong. */
const R = (name: string) => join(root, 'runs', name);
/** Shard folders for merge. */
const S = (name: string) => join(root, 'shards', name);
/** IDX folders with one thing wrong. */
const I = (name: string) => join(root, 'idx-bad', name);
/** Output folders of attack runs to resume, holding a damaged results.jsonl. */
const O = (name: string) => join(root, 'resume', name);
/** A program that does not exist (for --python). */
const noPython = join(root, 'no-python');
/**
 * A fresh output location per case, alone in a folder of its own (so that one case's temporary files are never
 * taken for another's); the command must leave nothing at it.
 */
const out = (name: string) => {
  mkdirSync(join(root, 'out', name), { recursive: true });
  return join(root, 'out', name, 'o');
};

// ---------------------------------------------------------------------------------------------------------
// The cases. In a case's arguments, @OUT (and @OUT2) stand for output paths of its own that do not exist yet:
// after the command they must still not exist.

interface Case {
  id: string;
  args: string[];
  /** Paths whose state (absent, a file's size, or a folder's listing) must be the same after the command. */
  watch: string[];
}

const cases: Case[] = [];
const slug = (id: string) => id.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');
const add = (id: string, args: string[], watch: string[] = []) => {
  if (cases.some((c) => c.id === id)) throw new Error(`case ${id} twice`);
  const o = out(`${cases.length}-${slug(id)}`);
  const outs = [o, `${o}-2`];
  const used = outs.filter((_, i) => args.some((a) => a.includes(i ? '@OUT2' : '@OUT')));
  cases.push({
    id,
    args: args.map((a) => a.replaceAll('@OUT2', outs[1]).replaceAll('@OUT', outs[0])),
    watch: [...used, ...watch],
  });
};

const INTS_BAD = ['0x10', '1e20', '-1', 'NaN', 'Infinity', '', 'abc', '1.5'];
const FLOATS_BAD = ['0x10', '1e20', '-1', 'NaN', 'Infinity', '', 'abc', '0'];
let rotation = 0;
/** `k` bad values in turn (so that every value is tried somewhere), or all of them. */
function bad(k: number, values = INTS_BAD): string[] {
  if (k >= values.length) return values;
  const picked = Array.from({ length: k }, (_, i) => values[(rotation + i) % values.length]);
  rotation += k;
  return picked;
}
const safe = (v: string) => (v === '' ? 'empty' : v);

/** One case per bad value of `option`, given as --option=value (so that -1 is not read as an option). */
function numeric(cmd: string, base: string[], option: string, values: string[]) {
  for (const v of values) add(`${cmd} ${option}=${safe(v)}`, [...base, `${option}=${v}`]);
}

// Commands and options that do not exist.
add('unknown command', ['nosuch']);
add('hamming is not a command', ['hamming']);
add('unknown global option', ['--bogus']);
add('unknown bench program', ['bench', 'nosuch']);
add('unknown data subcommand', ['data', 'nosuch']);

// doctor
add('doctor unknown backend', ['doctor', '--backend', 'nosuch']);
add('doctor unknown adapter', ['doctor', '--adapter', 'no-such-adapter']);
add('doctor unknown option', ['doctor', '--jsn']);
add('doctor extra argument', ['doctor', 'extra']);
add('doctor missing option value', ['doctor', '--backend']);

// bench kernels / driver / hamming / attack: every bad value is refused before the benchmark runs.
const kernels = ['bench', 'kernels', '--groups', 'small-cnn', '--reps', '1'];
add('bench kernels unknown group', ['bench', 'kernels', '--groups', 'nosuch']);
add('bench kernels empty groups', ['bench', 'kernels', '--groups', '']);
numeric('bench kernels', ['bench', 'kernels', '--groups', 'small-cnn'], '--reps', bad(4));
add('bench kernels --reps too many', ['bench', 'kernels', '--reps', '1000000000']);
add('bench kernels --out under a file', [...kernels, '--out', underFile('k.json')], [regular]);
add('bench kernels --out is a folder', [...kernels, '--out', join(root, 'files')], [join(root, 'files')]);
add('bench kernels --out under /proc', [...kernels, '--out', underProc('k.json')]);
add('bench kernels unknown backend', ['bench', 'kernels', '--backend', 'nosuch']);
numeric('bench driver', ['bench', 'driver', '--quick'], '--reps', bad(2));
add('bench driver --out under /proc', ['bench', 'driver', '--quick', '--out', underProc('d.json')]);
add(
  'bench driver --out under a file',
  ['bench', 'driver', '--quick', '--out', underFile('d.json')],
  [regular],
);
for (const o of ['--n', '--bits', '--queries', '--k', '--repeats', '--seed'])
  numeric('bench hamming', ['bench', 'hamming'], o, bad(2));
add('bench hamming --bits 0x10', ['bench', 'hamming', '--bits', '0x10']);
add('bench hamming --bits 7', ['bench', 'hamming', '--bits', '7']);
add('bench hamming --bits 4097', ['bench', 'hamming', '--bits', '4097']);
add('bench hamming database larger than memory', ['bench', 'hamming', '--n', '1000000000', '--bits', '4096']);
add('bench hamming unknown backend', ['bench', 'hamming', '--backend', 'cuda']);
add('bench hamming unknown peer', ['bench', 'hamming', '--peer', 'annoy']);
const tinyHamming = ['bench', 'hamming', '--n', '64', '--queries', '1', '--k', '1', '--repeats', '1'];
add('bench hamming missing python', [
  ...tinyHamming,
  '--backend',
  'cpu',
  '--peer',
  'faiss',
  '--python',
  noPython,
]);
const benchAttack = ['bench', 'attack', '--preset', 'small-cnn', '--batch', '1', '--engine', 'wasm'];
const tinyBenchAttack = [...benchAttack, '--iters', '1', '--check-iters', '1', '--bits', '16'];
add('bench attack missing preset', ['bench', 'attack', '--batch', '1']);
add('bench attack unknown preset', ['bench', 'attack', '--preset', 'resnet', '--batch', '1']);
for (const o of [
  '--batch',
  '--iters',
  '--check-iters',
  '--bits',
  '--size',
  '--seed',
  '--repeat',
  '--threads',
])
  numeric('bench attack', benchAttack, o, bad(2));
add('bench attack code length 10^9', [...benchAttack, '--bits', '1000000000', '--iters', '1']);
add('bench attack batch larger than memory', [...benchAttack.slice(0, 4), '--batch', '100000000']);
add('bench attack --size for small-cnn', [...benchAttack, '--size', '64']);
add('bench attack vgg11 --size 33', ['bench', 'attack', '--preset', 'vgg11', '--batch', '1', '--size', '33']);
add('bench attack vgg11 --size 10^9', [
  'bench',
  'attack',
  '--preset',
  'vgg11',
  '--batch',
  '1',
  '--size',
  '1000000000',
]);
add('bench attack unknown engine', [...benchAttack.slice(0, 6), '--engine', 'cuda']);
add('bench attack unknown peer', [...benchAttack, '--peer', 'jax']);
add('bench attack missing python', [...tinyBenchAttack, '--peer', 'torch', '--python', noPython]);
add('bench attack --out under a file', [...tinyBenchAttack, '--out', underFile('a.json')], [regular]);
add(
  'bench attack --out is a folder',
  [...tinyBenchAttack, '--out', join(root, 'files')],
  [join(root, 'files')],
);

// search
const search = (db: string, q: string, ...more: string[]) => [
  'search',
  '--bits',
  '16',
  '--db',
  db,
  '--queries',
  q,
  '--k',
  '3',
  '--backend',
  'cpu',
  '--out-dir',
  '@OUT',
  ...more,
];
const noOption = (args: string[], option: string) => {
  const i = args.indexOf(option);
  return [...args.slice(0, i), ...args.slice(i + 2)];
};
numeric('search', noOption(search(F.codes, F.queries), '--bits'), '--bits', bad(4));
numeric('search', noOption(search(F.codes, F.queries), '--k'), '--k', INTS_BAD);
add('search --bits 7', [...noOption(search(F.codes, F.queries), '--bits'), '--bits', '7']);
add('search missing --db', noOption(search(F.codes, F.queries), '--db'));
add('search missing --out-dir', noOption(search(F.codes, F.queries), '--out-dir'));
add('search unknown backend', [...search(F.codes, F.queries), '--backend', 'tpu']);
const npyFiles: Array<[string, string]> = [
  ['missing', F.missing],
  ['a folder', F.dir],
  ['empty', F.empty],
  ['random bytes', F.random],
  ['JSON', F.json],
  ['text', F.text],
  ['bad magic', F.badMagic],
  ['truncated', F.truncated],
  ['fortran order', F.fortran],
  ['huge shape', F.hugeShape],
  ['header not a dict', F.headerNotDict],
];
for (const [what, file] of [
  ...npyFiles,
  ['float32', F.x1],
  ['wrong width', F.codesWide],
  ['int8', F.codesI8],
  ['no codes', F.codesNone],
  ['1-D', F.codes1d],
] as Array<[string, string]>)
  add(`search --db ${what}`, search(file, F.queries));
for (const [what, file] of npyFiles.filter((_, i) => i % 3 === 0))
  add(`search --queries ${what}`, search(F.codes, file));
add(
  'search --out-dir under a file',
  noOption(search(F.codes, F.queries), '--out-dir').concat('--out-dir', underFile('s')),
  [regular],
);
add('search --out-dir under /proc', [
  ...noOption(search(F.codes, F.queries), '--out-dir'),
  '--out-dir',
  underProc('s'),
]);
add(
  'search --out-dir is a file',
  [...noOption(search(F.codes, F.queries), '--out-dir'), '--out-dir', regular],
  [regular],
);
add(
  'search --out-dir holds a folder ids.npy',
  [...noOption(search(F.codes, F.queries), '--out-dir'), '--out-dir', O('ids-folder')],
  [O('ids-folder')],
);

// encode
const encode = (input: string, m = model, ...more: string[]) => [
  'encode',
  '--model',
  m,
  '--input',
  input,
  '--out',
  '@OUT',
  '--engine',
  'wasm',
  '--quiet',
  ...more,
];
const pixelFiles: Array<[string, string]> = [
  ['missing', F.missing],
  ['a folder', F.dir],
  ['empty', F.empty],
  ['random bytes', F.random],
  ['JSON', F.json],
  ['float64', F.f64],
  ['no channel axis', F.noChannel],
  ['NaN', F.nan],
  ['Infinity', F.inf],
  ['negative pixels', F.negative],
  ['wrong image size', F.wrongSize],
  ['truncated', F.truncated],
  ['huge shape', F.hugeShape],
];
for (const [what, file] of pixelFiles) add(`encode --input ${what}`, encode(file));
add('encode --out under a file', noOption(encode(F.x1), '--out').concat('--out', underFile('c.npy')), [
  regular,
]);
add('encode --out is a folder', noOption(encode(F.x1), '--out').concat('--out', join(root, 'files')), [
  join(root, 'files'),
]);
add('encode --out under /proc', noOption(encode(F.x1), '--out').concat('--out', underProc('c.npy')));
add('encode --features under a file', [...encode(F.x1), '--features', underFile('f.npy')], [regular]);
add('encode --features under /proc', [...encode(F.x1), '--features', underProc('f.npy')]);
add('encode missing --out', noOption(encode(F.x1), '--out'));
add('encode unknown engine', [...noOption(encode(F.x1), '--engine'), '--engine', 'cuda']);
numeric('encode', encode(F.x1), '--batch', bad(3));
numeric('encode', encode(F.x1), '--cpu-threads', [...bad(2), '0', '17']);

// Model folders (encode and attack read them the same way).
const modelFolders: Array<[string, string]> = [
  ['missing', M('missing')],
  ['a file', regular],
  ['empty folder', M('empty')],
  ['no weights', M('no-weights')],
  ['model.json empty', M('spec-empty')],
  ['model.json truncated', M('spec-truncated')],
  ['model.json null', M('spec-null')],
  ['model.json an array', M('spec-array')],
  ['model.json a folder', M('spec-folder')],
  ['bits a string', M('bits-string')],
  ['bits negative', M('bits-negative')],
  ['bits 10^9', M('bits-huge')],
  ['unknown layer', M('layer-unknown')],
  ['layer of 10^9 outputs', M('layer-huge')],
  ['input of 10^6 x 10^6', M('input-huge')],
  ['layers not a list', M('layers-object')],
  ['weights empty', M('weights-empty')],
  ['weights truncated', M('weights-truncated')],
  ['weights random', M('weights-random')],
  ['weights of another model', M('weights-other')],
];
for (const [what, dir] of modelFolders) add(`encode --model ${what}`, encode(F.x1, dir));

// attack, from files
const attack = (x: string, t: string, ...more: string[]) => [
  'attack',
  '--model',
  model,
  '--input',
  x,
  '--targets',
  t,
  '--iters',
  '1',
  '--engine',
  'wasm',
  '--cpu-threads',
  '1',
  '--out-dir',
  '@OUT',
  ...more,
];
for (const [what, dir] of modelFolders.filter((_, i) => i % 4 === 1))
  add(
    `attack --model ${what}`,
    attack(F.x1, F.t16).map((a) => (a === model ? dir : a)),
  );
for (const [what, file] of pixelFiles.filter((_, i) => i % 2 === 0))
  add(`attack --input ${what}`, attack(file, F.t16));
for (const [what, file] of [
  ['missing', F.missing],
  ['a folder', F.dir],
  ['random bytes', F.random],
  ['32 bits', F.t32],
  ['float32', F.tF32],
  ['value 2', F.tTwo],
  ['value 0', F.tZero],
  ['other row count', F.tRows],
  ['4-D', F.t4d],
  ['uint8 codes', F.codes],
] as Array<[string, string]>)
  add(`attack --targets ${what}`, attack(F.x1, file));
const attackOk = attack(F.x1, F.t16);
add('attack missing --model', noOption(attackOk, '--model'));
add('attack missing --out-dir', noOption(attackOk, '--out-dir'));
add('attack missing --targets', noOption(attackOk, '--targets'));
add('attack missing --input', noOption(attackOk, '--input'));
add('attack --data and --input', [...attackOk, '--data', data]);
add('attack unknown method', [...attackOk, '--method', 'fgsm']);
add('attack unknown option', [...attackOk, '--bogus']);
add('attack extra argument', [...attackOk, 'extra']);
add('attack missing option value', [...attackOk, '--iters']);
add('attack unknown engine', [...attackOk, '--engine', 'cuda']);
add('attack unknown backend', [...attackOk, '--backend', 'glide']);
add('attack unknown step', [...attackOk, '--step', 'l3']);
add('attack unknown eps space', [...attackOk, '--eps-space', 'hsv']);
add('attack --eps 2 in pixels', [...attackOk, '--eps', '2', '--eps-space', 'pixel']);
add('attack --eps 101', [...attackOk, '--eps', '101']);
add('attack --lr 1e7', [...attackOk, '--lr', '1e7']);
add('attack --seed 2^32', [...attackOk, '--seed', '4294967296']);
add('attack --batch 100001', [...attackOk, '--batch', '100001']);
add('attack --cpu-threads 17', [...attackOk, '--cpu-threads', '17']);
add('attack --query-ids letters', [...attackOk, '--query-ids', 'a']);
add('attack --query-ids twice', [...attack(F.x2, F.t16x3), '--query-ids', '4,4']);
add('attack --query-ids too few', [...attack(F.x2, F.t16x3), '--query-ids', '4']);
add('attack --query-ids negative', [...attackOk, '--query-ids=-3']);
add('attack --query-ids 10^20', [...attackOk, '--query-ids', '99999999999999999999']);
add('attack --query-ids float .npy', [...attackOk, '--query-ids', F.idsF32]);
add('attack --query-ids 2-D .npy', [...attackOk, '--query-ids', F.ids2d]);
add('attack --query-ids missing .npy', [...attackOk, '--query-ids', F.missing]);
add('attack --query-ids random .npy', [...attackOk, '--query-ids', F.random]);
numeric('attack', attackOk, '--iters', INTS_BAD);
numeric('attack', attackOk, '--eps', FLOATS_BAD);
for (const o of ['--batch', '--seed', '--cpu-threads']) numeric('attack', attackOk, o, bad(2));
for (const o of ['--lr', '--alpha']) numeric('attack', attackOk, o, bad(2, FLOATS_BAD));
add(
  'attack --out-dir under a file',
  [...noOption(attackOk, '--out-dir'), '--out-dir', underFile('a')],
  [regular],
);
add('attack --out-dir under /proc', [...noOption(attackOk, '--out-dir'), '--out-dir', underProc('a')]);
add('attack --out-dir is a file', [...noOption(attackOk, '--out-dir'), '--out-dir', regular], [regular]);

// attack, the protocol on the tiny IDX set
const protocol = (name = data, ...more: string[]) => [
  'attack',
  '--model',
  model,
  '--data',
  name,
  '--queries',
  '2',
  '--n-t',
  '3',
  '--iters',
  '1',
  '--methods',
  'original,dhta',
  '--engine',
  'wasm',
  '--cpu-threads',
  '1',
  '--json',
  '--out-dir',
  '@OUT',
  ...more,
];
for (const o of ['--queries', '--n-t', '--r']) numeric('attack --data', protocol(), o, bad(2));
add('attack --data unknown name', protocol('nosuch'));
add('attack --data without path', protocol('idx:'));
add('attack --data missing folder', protocol(`idx:${I('missing')}`));
add('attack --data a file', protocol(`idx:${regular}`));
add('attack --data bad percent-encoding', protocol('mnist?seed=%E0%A4%A'));
add('attack --data unknown parameter', protocol('mnist?colour=red'));
add(
  'attack --data model of other inputs',
  protocol().map((a) => (a === model ? M('rgb-32') : a)),
);
add('attack --n-t more than a class holds', protocol(data, '--n-t', '100'));
add('attack --queries more than the set holds', protocol(data, '--queries', '1000'));
add('attack --methods unknown', protocol(data, '--methods', 'original,fgsm'));
add('attack --methods twice', protocol(data, '--methods', 'dhta,dhta'));
add('attack --methods empty', protocol(data, '--methods', ''));
add('attack --zero-hits unknown', protocol(data, '--zero-hits', 'maybe'));
for (const s of ['2/2', '1/0', 'a/b', '-1/2', '1', '0x1/2'])
  add(`attack --shard ${s}`, protocol(data, `--shard=${s}`));
add(
  'attack --data --out-dir under a file',
  [...noOption(protocol(), '--out-dir'), '--out-dir', underFile('p')],
  [regular],
);
add('attack --data --out-dir under /proc', [
  ...noOption(protocol(), '--out-dir'),
  '--out-dir',
  underProc('p'),
]);
add(
  'attack --data --out-dir is a file',
  [...noOption(protocol(), '--out-dir'), '--out-dir', regular],
  [regular],
);
const resumeIn = (name: string, ...more: string[]) => [
  ...noOption(protocol(), '--out-dir'),
  '--out-dir',
  O(name),
  ...more,
];
for (const name of [
  'empty',
  'random',
  'truncated-header',
  'edited-header',
  'null-line',
  'edited-line',
  'folder',
])
  add(`attack --resume, results.jsonl ${name}`, resumeIn(name, '--resume'), [O(name)]);
add('attack --data, results.jsonl random, no --resume', resumeIn('random'), [O('random')]);
const badIdx: Array<[string, string]> = [
  ['empty folder', I('empty')],
  ['empty files', I('empty-files')],
  ['random files', I('random')],
  ['truncated images', I('truncated-images')],
  ['labels count differs', I('label-count')],
  ['count 2^32-1', I('huge-count')],
  ['images are folders', I('folders')],
];
for (const [what, dir] of badIdx) {
  add(`attack --data idx ${what}`, protocol(`idx:${dir}`));
  add(`data info idx ${what}`, ['data', 'info', `idx:${dir}`]);
}

// train
const train = (...more: string[]) => [
  'train',
  '--data',
  data,
  '--preset',
  'small-cnn',
  '--bits',
  '16',
  '--epochs',
  '1',
  '--no-eval',
  '--out',
  '@OUT',
  ...more,
];
numeric('train', noOption(train(), '--bits'), '--bits', bad(3));
numeric('train', noOption(train(), '--epochs'), '--epochs', bad(3));
for (const o of ['--stop-after', '--seed', '--batch', '--train-per-class', '--eval-queries', '--cpu-threads'])
  numeric('train', train(), o, bad(1));
const FLOATS_BAD_DECIMAL = FLOATS_BAD.filter((v) => v !== '0x10');
for (const o of ['--lr', '--eta', '--weight-decay', '--init-hash-scale'])
  numeric('train', train(), o, bad(1, FLOATS_BAD_DECIMAL));
for (const o of ['--eta', '--weight-decay']) numeric('train', train(), o, ['0x10']);
add('train --lr-steps 0x1', train('--lr-steps', '0x1'));
add('train --bits 4097', [...noOption(train(), '--bits'), '--bits', '4097']);
add('train unknown preset', [...noOption(train(), '--preset'), '--preset', 'resnet']);
add('train unknown data', [...noOption(train(), '--data'), '--data', 'nosuch']);
add('train data missing folder', [...noOption(train(), '--data'), '--data', `idx:${I('missing')}`]);
add('train data random files', [...noOption(train(), '--data'), '--data', `idx:${I('random')}`]);
add('train --lr-steps letters', train('--lr-steps', 'a,b'));
add('train --lr-steps past the end', train('--lr-steps', '1.5'));
add('train --held-out letters', train('--held-out', 'x'));
add('train --held-out every class', train('--held-out', '0,1,2'));
add('train --held-out unknown class', train('--held-out', '99'));
for (const name of ['ckpt-empty', 'ckpt-random'])
  add(
    `train --resume, checkpoint ${name.slice(5)}`,
    [...noOption(train(), '--out'), '--out', M(name), '--resume'],
    [M(name), `${M(name)}.checkpoint`],
  );
add('train --out under a file', [...noOption(train(), '--out'), '--out', underFile('t')], [regular]);
add('train --out under /proc', [...noOption(train(), '--out'), '--out', underProc('t')]);
add('train --out is a file', [...noOption(train(), '--out'), '--out', regular], [regular]);
add('train missing --out', noOption(train(), '--out'));
add('train unknown engine', train('--engine', 'cuda'));

// data list / info / export
add('data list extra argument', ['data', 'list', 'extra']);
add('data list unknown option', ['data', 'list', '--bogus']);
add('data info unknown name', ['data', 'info', 'nosuch']);
add('data info missing folder', ['data', 'info', `idx:${I('missing')}`]);
add('data info a file', ['data', 'info', `idx:${regular}`]);
add('data info list, missing file', ['data', 'info', `list:${F.missing}`]);
add('data info list, random file', ['data', 'info', `list:${F.random}`]);
add('data info folder layout, a file', ['data', 'info', `folder:${regular}`]);
add('data info bad percent-encoding', ['data', 'info', 'mnist?seed=%E0%A4%A']);
add('data info no name', ['data', 'info']);
// Data set parameters: sizes past what a process holds, and numbers that are not decimal integers.
add('data info moving-mnist?db-per-class=10^9', ['data', 'info', 'moving-mnist?db-per-class=1000000000']);
add('data info moving-mnist?db-per-class=0x10', ['data', 'info', 'moving-mnist?db-per-class=0x10']);
add('data info moving-mnist?query-per-class=1e3', ['data', 'info', 'moving-mnist?query-per-class=1e3']);
add('data info list?resize=20000', ['data', 'info', `list:${F.random}?resize=20000`]);
add('data info list?channels=2', ['data', 'info', `list:${F.random}?channels=2`]);
add('data info folder?resize=0', ['data', 'info', `folder:${regular}?resize=0`]);
add('data info --held-out letters', ['data', 'info', data, '--held-out', 'x']);
numeric('data info', ['data', 'info', data], '--seed', bad(2));
numeric('data info', ['data', 'info', data], '--train-per-class', bad(2));
const exportArgs = (...more: string[]) => [
  'data',
  'export',
  data,
  '--split',
  'query',
  '--out',
  '@OUT',
  '--labels',
  '@OUT2',
  ...more,
];
add('data export unknown split', [...noOption(exportArgs(), '--split'), '--split', 'test']);
add('data export missing --split', noOption(exportArgs(), '--split'));
add('data export missing --out', noOption(exportArgs(), '--out'));
add('data export --offset past the end', exportArgs('--offset', '1000'));
add('data export --limit 0', exportArgs('--limit', '0'));
numeric('data export', exportArgs(), '--offset', bad(2));
numeric('data export', exportArgs(), '--limit', bad(2));
add(
  'data export --out under a file',
  [...noOption(exportArgs(), '--out'), '--out', underFile('e.npy')],
  [regular],
);
add('data export --out under /proc', [...noOption(exportArgs(), '--out'), '--out', underProc('e.npy')]);
add(
  'data export --out is a folder',
  [...noOption(exportArgs(), '--out'), '--out', join(root, 'files')],
  [join(root, 'files')],
);
add(
  'data export --labels under a file',
  [...noOption(exportArgs(), '--labels'), '--labels', underFile('l.npy')],
  [regular],
);
add(
  'data export unknown data',
  exportArgs().map((a) => (a === data ? 'nosuch' : a)),
);

// demo
const demo = (...more: string[]) => ['demo', '--out-dir', '@OUT', '--engine', 'wasm', '--json', ...more];
add('demo unknown data', demo('--data', 'nosuch'));
add('demo missing model', demo('--model', M('missing')));
add('demo model a file', demo('--model', regular));
add('demo model.json truncated', demo('--model', M('spec-truncated')));
add('demo --paper-eps with --eps', demo('--paper-eps', '--eps', '0.1'));
for (const o of ['--queries', '--n-t', '--iters', '--seed']) numeric('demo', demo(), o, bad(1));
numeric('demo', demo(), '--eps', bad(2, FLOATS_BAD));
add(
  'demo --out-dir under a file',
  ['demo', '--out-dir', underFile('d'), '--engine', 'wasm', '--queries', '2'],
  [regular],
);
add('demo unknown option', demo('--bogus'));

// merge
add('merge no folders', ['merge', '--out-dir', '@OUT']);
add('merge missing --out-dir', ['merge', S('whole')]);
for (const name of [
  'missing',
  'empty-folder',
  'results-folder',
  'empty',
  'random',
  'truncated-header',
  'header-null',
  'header-array',
  'header-queries-string',
  'header-queries-huge',
  'header-bits-zero',
  'header-methods-null',
  'header-shard-null',
  'null-line',
  'line-array',
  'line-ap-string',
  'line-position-out',
  'line-precision-short',
  'line-label-null',
  'byte-order-mark',
])
  add(`merge ${name}`, ['merge', S(name), '--out-dir', '@OUT'], [S(name)]);
add('merge a file', ['merge', regular, '--out-dir', '@OUT'], [regular]);
add('merge incomplete', ['merge', S('shard0'), '--out-dir', '@OUT']);
add('merge another run', ['merge', S('shard0'), S('other-run'), '--out-dir', '@OUT']);
add('merge shard counts mixed', ['merge', S('shard0'), S('shard1of3'), '--out-dir', '@OUT']);
add(
  'merge --out-dir under a file',
  ['merge', S('whole'), '--out-dir', underFile('m')],
  [regular, S('whole')],
);
add('merge --out-dir under /proc', ['merge', S('whole'), '--out-dir', underProc('m')], [S('whole')]);
add('merge --out-dir is a file', ['merge', S('whole'), '--out-dir', regular], [regular, S('whole')]);
add(
  'merge --out-dir holds a folder metrics.json',
  ['merge', S('whole'), '--out-dir', O('metrics-folder')],
  [O('metrics-folder'), S('whole')],
);

// reproduce
const reproduce = (...more: string[]) => [
  'reproduce',
  'table1',
  '--model',
  join(root, 'model-{bits}'),
  '--data',
  data,
  '--bits',
  '16',
  '--queries',
  '2',
  '--iters',
  '1',
  '--engine',
  'wasm',
  '--json',
  '--out-dir',
  '@OUT',
  ...more,
];
add('reproduce unknown experiment', ['reproduce', 'table9', '--out-dir', '@OUT']);
add('reproduce no experiment', ['reproduce', '--out-dir', '@OUT']);
add('reproduce missing model', [...noOption(reproduce(), '--model'), '--model', M('missing')]);
for (const v of ['a,b', '0x10', '5000', '', '16,,32'])
  add(`reproduce --bits ${safe(v)}`, [...noOption(reproduce(), '--bits'), `--bits=${v}`]);
add('reproduce unknown data', [...noOption(reproduce(), '--data'), '--data', 'nosuch']);
add('reproduce data missing folder', [...noOption(reproduce(), '--data'), '--data', `idx:${I('missing')}`]);
add('reproduce data random files', [...noOption(reproduce(), '--data'), '--data', `idx:${I('random')}`]);
add('reproduce --zoo missing', ['reproduce', 'table1', '--zoo', M('missing'), '--out-dir', '@OUT']);
add('reproduce --shard 3/2', reproduce('--shard', '3/2'));
add(
  'reproduce --out-dir under a file',
  [...noOption(reproduce(), '--out-dir'), '--out-dir', underFile('r')],
  [regular],
);
add('reproduce --out-dir under /proc', [...noOption(reproduce(), '--out-dir'), '--out-dir', underProc('r')]);
numeric('reproduce', reproduce(), '--queries', bad(2));
numeric('reproduce', reproduce(), '--iters', bad(2));

// report
add('report missing folder', ['report', R('missing')]);
add('report a file', ['report', regular], [regular]);
add('report no OUT_DIR', ['report']);
for (const name of [
  'empty-folder',
  'metrics-empty',
  'metrics-truncated',
  'metrics-random',
  'metrics-null',
  'metrics-array',
  'metrics-none',
  'metrics-folder',
  'anchor-distance-string',
  'anchor-distance-null',
  'tmap-string',
  'tmap-huge-string',
  'method-null',
  'method-html',
  'bits-negative',
  'data-number',
  'seconds-string',
  'zero-hits-unknown',
  'curves-truncated',
  'curves-null',
  'curves-radii-string',
  'curves-lengths',
  'curves-folder',
  'retrieval-truncated',
  'retrieval-data-differs',
  'retrieval-rows',
  'retrieval-item-id',
  'retrieval-queries-null',
  'timing-truncated',
  'timing-null',
  'benign-random',
  'benign-empty',
  'benign-float64',
  'benign-3d',
  'benign-2-channels',
  'benign-folder',
  'dhta-shape-differs',
])
  add(`report ${name}`, ['report', R(name)], [R(name)]);
numeric('report', ['report', R('good')], '--queries', bad(4));
add('report --queries 10^6', ['report', R('good'), '--queries', '1000000']);

// ---------------------------------------------------------------------------------------------------------
// Fixtures.

async function writeFixtures(): Promise<void> {
  const rng = new SeededRandom(15);
  mkdirSync(join(root, 'files', 'folder.npy'), { recursive: true });
  mkdirSync(join(root, 'out'), { recursive: true });
  writeFileSync(regular, 'a regular file, not a folder\n');
  writeFileSync(F.empty, '');
  writeFileSync(
    F.random,
    Uint8Array.from({ length: 4096 }, () => Math.floor(rng.next() * 256)),
  );
  writeFileSync(F.json, '{"shape": [1, 1, 28, 28], "data": [0.5]}\n');
  writeFileSync(F.text, 'not an array\n');
  const x1 = Float32Array.from(rng.uniformArray(784, 0, 1));
  const npyX1 = writeNpy(x1, [1, 1, 28, 28]);
  const bad = npyX1.slice();
  bad[1] = 'X'.charCodeAt(0);
  writeFileSync(F.badMagic, bad);
  writeFileSync(F.truncated, npyX1.subarray(0, Math.floor(npyX1.length / 2)));
  const npyHeader = (header: string) => {
    // Version 1.0: magic, version, header length (little-endian u16), the header padded to 64 bytes.
    const text = `${header}`.padEnd(Math.ceil((header.length + 11) / 64) * 64 - 10, ' ') + '\n';
    const bytes = new Uint8Array(10 + text.length + 16);
    bytes.set([0x93, ...Buffer.from('NUMPY'), 1, 0], 0);
    new DataView(bytes.buffer).setUint16(8, text.length, true);
    bytes.set(Buffer.from(text, 'latin1'), 10);
    return bytes;
  };
  writeFileSync(F.fortran, npyHeader("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 2), }"));
  writeFileSync(
    F.hugeShape,
    npyHeader("{'descr': '|u1', 'fortran_order': False, 'shape': (20000000000, 2), }"),
  );
  writeFileSync(F.headerNotDict, npyHeader('[1, 2, 3]'));
  await writeNpyFile(F.f64, Float64Array.from(x1), [1, 1, 28, 28]);
  await writeNpyFile(F.noChannel, x1, [1, 28, 28]);
  const withValue = (v: number) => {
    const a = x1.slice();
    a[100] = v;
    return a;
  };
  await writeNpyFile(F.nan, withValue(Number.NaN), [1, 1, 28, 28]);
  await writeNpyFile(F.inf, withValue(Number.POSITIVE_INFINITY), [1, 1, 28, 28]);
  await writeNpyFile(F.negative, withValue(-0.5), [1, 1, 28, 28]);
  await writeNpyFile(F.x1, x1, [1, 1, 28, 28]);
  await writeNpyFile(F.x2, Float32Array.from(rng.uniformArray(2 * 784, 0, 1)), [2, 1, 28, 28]);
  await writeNpyFile(F.xEmpty, new Float32Array(0), [0, 1, 28, 28]);
  await writeNpyFile(F.wrongSize, Float32Array.from(rng.uniformArray(3 * 32 * 32, 0, 1)), [1, 3, 32, 32]);
  const pm = (n: number) => Int8Array.from({ length: n }, () => (rng.next() < 0.5 ? -1 : 1));
  await writeNpyFile(F.t16, pm(16), [1, 16]);
  await writeNpyFile(F.t16x3, pm(2 * 3 * 16), [2, 3, 16]);
  await writeNpyFile(F.t32, pm(32), [1, 32]);
  await writeNpyFile(F.tF32, Float32Array.from(pm(16)), [1, 16]);
  await writeNpyFile(F.tTwo, Int8Array.from(pm(16).map((v, i) => (i === 5 ? 2 : v))), [1, 16]);
  await writeNpyFile(F.tZero, Int8Array.from(pm(16).map((v, i) => (i === 5 ? 0 : v))), [1, 16]);
  await writeNpyFile(F.tRows, pm(3 * 16), [3, 16]);
  await writeNpyFile(F.t4d, pm(16), [1, 1, 1, 16]);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rng.next() * 256));
  await writeNpyFile(F.codes, bytes(20), [10, 2]);
  await writeNpyFile(F.queries, bytes(4), [2, 2]);
  await writeNpyFile(F.codesWide, bytes(30), [10, 3]);
  await writeNpyFile(
    F.codesI8,
    Int8Array.from(bytes(20), (b) => (b & 0x7f) - 64),
    [10, 2],
  );
  await writeNpyFile(F.codesNone, new Uint8Array(0), [0, 2]);
  await writeNpyFile(F.codes1d, bytes(20), [20]);
  await writeNpyFile(F.idsF32, Float32Array.from([1.5]), [1]);
  await writeNpyFile(F.ids2d, Int32Array.from([1]), [1, 1]);

  // The model and its damaged copies.
  const spec = smallCnn(bits);
  await saveBundle(model, { spec, weights: initWeights(spec, 3) });
  await saveBundle(join(root, 'model-16'), { spec, weights: initWeights(spec, 3) });
  const rgb = smallCnn(bits, { channels: 3, size: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
  await saveBundle(M('rgb-32'), { spec: rgb, weights: initWeights(rgb, 3) });
  const specText = readFileSync(join(model, 'model.json'), 'utf8');
  const weights = readFileSync(join(model, 'weights.safetensors'));
  const copy = (name: string, edit?: (spec: Record<string, unknown>) => unknown, text?: string) => {
    const dir = M(name);
    mkdirSync(dir, { recursive: true });
    const json = JSON.parse(specText) as Record<string, unknown>;
    writeFileSync(
      join(dir, 'model.json'),
      text ?? (edit ? `${JSON.stringify(edit(json) ?? json, null, 2)}\n` : specText),
    );
    writeFileSync(join(dir, 'weights.safetensors'), weights);
    return dir;
  };
  mkdirSync(M('empty'), { recursive: true });
  mkdirSync(M('no-weights'), { recursive: true });
  writeFileSync(join(M('no-weights'), 'model.json'), specText);
  copy('spec-empty', undefined, '');
  copy('spec-truncated', undefined, specText.slice(0, Math.floor(specText.length / 2)));
  copy('spec-null', undefined, 'null\n');
  copy('spec-array', undefined, '[]\n');
  mkdirSync(join(M('spec-folder'), 'model.json'), { recursive: true });
  writeFileSync(join(M('spec-folder'), 'weights.safetensors'), weights);
  copy('bits-string', (s) => {
    s['bits'] = '16';
  });
  copy('bits-negative', (s) => {
    s['bits'] = -1;
  });
  copy('bits-huge', (s) => {
    s['bits'] = 1e9;
    (s['layers'] as Array<Record<string, unknown>>).at(-1)!['out'] = 1e9;
  });
  copy('layer-unknown', (s) => {
    (s['layers'] as Array<Record<string, unknown>>)[1]['type'] = 'gelu';
  });
  copy('layer-huge', (s) => {
    (s['layers'] as Array<Record<string, unknown>>)[0]['out'] = 1e9;
  });
  copy('input-huge', (s) => {
    const input = s['input'] as Record<string, unknown>;
    input['height'] = 1e6;
    input['width'] = 1e6;
  });
  copy('layers-object', (s) => {
    s['layers'] = { conv: 1 };
  });
  copy('weights-empty');
  writeFileSync(join(M('weights-empty'), 'weights.safetensors'), '');
  copy('weights-truncated');
  writeFileSync(
    join(M('weights-truncated'), 'weights.safetensors'),
    weights.subarray(0, weights.length >> 1),
  );
  copy('weights-random');
  writeFileSync(join(M('weights-random'), 'weights.safetensors'), bytes(4096));
  copy('weights-other');
  writeFileSync(
    join(M('weights-other'), 'weights.safetensors'),
    readFileSync(join(M('rgb-32'), 'weights.safetensors')),
  );
  // Training checkpoints that are not checkpoints.
  writeFileSync(`${M('ckpt-empty')}.checkpoint`, '');
  writeFileSync(`${M('ckpt-random')}.checkpoint`, bytes(4096));

  // IDX data: the good set and damaged ones.
  writeIdx(idx, new SeededRandom(5));
  const idxFiles = readdirSync(idx);
  const idxCopy = (name: string, edit: (file: string, b: Buffer) => Buffer | string | null) => {
    const dir = I(name);
    mkdirSync(dir, { recursive: true });
    for (const f of idxFiles) {
      const b = edit(f, readFileSync(join(idx, f)));
      if (b === null) mkdirSync(join(dir, f));
      else writeFileSync(join(dir, f), b);
    }
  };
  mkdirSync(I('empty'), { recursive: true });
  idxCopy('empty-files', () => '');
  idxCopy('random', () => Buffer.from(bytes(2048)));
  idxCopy('truncated-images', (f, b) => (f.includes('images') ? b.subarray(0, b.length >> 1) : b));
  idxCopy('label-count', (f, b) => {
    if (!f.includes('labels')) return b;
    const c = Buffer.from(b);
    c.writeUInt32BE(c.readUInt32BE(4) + 5, 4);
    return c;
  });
  idxCopy('huge-count', (_f, b) => {
    const c = Buffer.from(b);
    c.writeUInt32BE(0xffffffff, 4);
    return c;
  });
  idxCopy('folders', (f, b) => (f.includes('images') ? null : b));

  // Run folders for report: one good one, and copies each with one thing wrong.
  await makeRunFolder(R('good'), { queries: 3, bits: 32 });
  const run = (name: string, edit: (dir: string) => void) => {
    cpSync(R('good'), R(name), { recursive: true });
    edit(R(name));
  };
  const editJson = (file: string, f: (v: Record<string, unknown>) => void) => (dir: string) => {
    const v = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    f(v);
    writeFileSync(join(dir, file), `${JSON.stringify(v)}\n`);
  };
  const setText = (file: string, text: string | Uint8Array) => (dir: string) =>
    writeFileSync(join(dir, file), text);
  const cut = (file: string) => (dir: string) => {
    const t = readFileSync(join(dir, file), 'utf8');
    writeFileSync(join(dir, file), t.slice(0, Math.floor(t.length / 2)));
  };
  const folderFor = (file: string) => (dir: string) => {
    const p = join(dir, file);
    // the file replaced by a folder of the same name
    rmSync(p, { force: true });
    mkdirSync(p);
  };
  /** Sets one field of a JSON file, by its path of keys. */
  const setAt = (file: string, path: Array<string | number>, value: unknown) =>
    editJson(file, (v) => {
      let o = v as Record<string | number, unknown>;
      for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
      o[path[path.length - 1]] = value;
    });
  mkdirSync(R('empty-folder'), { recursive: true });
  run('metrics-empty', setText('metrics.json', ''));
  run('metrics-truncated', cut('metrics.json'));
  run('metrics-random', setText('metrics.json', bytes(512)));
  run('metrics-null', setText('metrics.json', 'null\n'));
  run('metrics-array', setText('metrics.json', '[]\n'));
  run('metrics-none', setAt('metrics.json', ['metrics'], []));
  run('metrics-folder', folderFor('metrics.json'));
  run('anchor-distance-string', setAt('metrics.json', ['metrics', 0, 'anchorDistance'], 'x'));
  run('anchor-distance-null', setAt('metrics.json', ['metrics', 0, 'anchorDistance'], null));
  run('tmap-string', setAt('metrics.json', ['metrics', 0, 'tMap'], '0.5'));
  run('tmap-huge-string', setAt('metrics.json', ['metrics', 0, 'tMap'], 'x'.repeat(100_000)));
  run('method-null', setAt('metrics.json', ['metrics', 0, 'method'], null));
  run('method-html', setAt('metrics.json', ['metrics', 0, 'method'], '<script>'));
  run('bits-negative', setAt('metrics.json', ['bits'], -1));
  run('data-number', setAt('metrics.json', ['data'], 5));
  run('seconds-string', setAt('metrics.json', ['seconds'], 'x'));
  run('zero-hits-unknown', setAt('metrics.json', ['zeroHits'], 'maybe'));
  run('curves-truncated', cut('curves.json'));
  run('curves-null', setText('curves.json', 'null\n'));
  run('curves-radii-string', setAt('curves.json', ['curves', 'dhta', 'radii'], 'x'));
  run(
    'curves-lengths',
    editJson('curves.json', (v) => {
      const c = (v['curves'] as Record<string, Record<string, unknown[]>>)['dhta'];
      c['precision'] = c['precision'].slice(1);
    }),
  );
  run('curves-folder', folderFor('curves.json'));
  run('retrieval-truncated', cut('retrieval.json'));
  run('retrieval-data-differs', setAt('retrieval.json', ['data'], 'fashion-mnist'));
  run(
    'retrieval-rows',
    editJson('retrieval.json', (v) => {
      const top = v['top'] as Record<string, unknown[]>;
      top['dhta'] = top['dhta'].slice(1);
    }),
  );
  run(
    'retrieval-item-id',
    editJson('retrieval.json', (v) => {
      const top = v['top'] as Record<string, Array<Array<Record<string, unknown>>>>;
      top['benign'][0][0]['id'] = -1;
    }),
  );
  run('retrieval-queries-null', setAt('retrieval.json', ['queries'], null));
  run('timing-truncated', setText('timing.json', '{"seconds": {"total": 1'));
  run('timing-null', setText('timing.json', 'null\n'));
  run('benign-random', setText('examples/benign.npy', bytes(2048)));
  run('benign-empty', setText('examples/benign.npy', ''));
  run('benign-float64', (dir) =>
    writeFileSync(join(dir, 'examples/benign.npy'), writeNpy(new Float64Array(3 * 784), [3, 1, 28, 28])),
  );
  run('benign-3d', (dir) =>
    writeFileSync(join(dir, 'examples/benign.npy'), writeNpy(new Float32Array(3 * 784), [3, 28, 28])),
  );
  run('benign-2-channels', (dir) =>
    writeFileSync(join(dir, 'examples/benign.npy'), writeNpy(new Float32Array(3 * 2 * 784), [3, 2, 28, 28])),
  );
  run('benign-folder', folderFor('examples/benign.npy'));
  run('dhta-shape-differs', (dir) =>
    writeFileSync(join(dir, 'examples/dhta.npy'), writeNpy(new Float32Array(2 * 784), [2, 1, 28, 28])),
  );

  // Shard folders for merge (results.jsonl as runProtocol writes it: a header line, then one line per
  // (method, query)).
  const header = (o: Partial<Record<string, unknown>> = {}) => ({
    format: 'dhta-results/1',
    data: `idx:${idx}`,
    model,
    seed: 3,
    queries: 2,
    nT: 3,
    bits: 4,
    methods: ['original', 'dhta'],
    R: 10,
    zeroHits: 'skip',
    databaseSize: 10,
    ns: [2, 4],
    attack: { iterations: 5 },
    targetClasses: null,
    shard: { index: 0, count: 1 },
    engine: 'wasm',
    ...o,
  });
  const row = (method: string, position: number, o: Partial<Record<string, unknown>> = {}) => ({
    method,
    position,
    query: 3 + position,
    label: [1],
    target: [2],
    anchorDistanceBefore: 2,
    anchorDistanceAfter: 1,
    ap: 0.5,
    tap: 0.25,
    perceptibility: method === 'original' ? null : 0.01,
    iterations: method === 'original' ? 0 : 5,
    seconds: 0.1,
    precision: [null, 0.5, 0.5, 0.4, 0.3],
    recall: [0, 0.1, 0.2, 0.5, 1],
    precisionAtN: [0.5, 0.25],
    ...o,
  });
  const rows = ['original', 'dhta'].flatMap((m) => [row(m, 0), row(m, 1)]);
  const lines = (h: unknown, rs: unknown[]) =>
    `${[JSON.stringify({ header: h }), ...rs.map((r) => JSON.stringify(r))].join('\n')}\n`;
  const shard = (name: string, text: string | Uint8Array | null) => {
    mkdirSync(S(name), { recursive: true });
    if (text === null) mkdirSync(join(S(name), 'results.jsonl'));
    else writeFileSync(join(S(name), 'results.jsonl'), text);
  };
  shard('whole', lines(header(), rows));
  mkdirSync(S('empty-folder'), { recursive: true });
  shard('results-folder', null);
  shard('empty', '');
  shard('random', bytes(4096));
  shard('truncated-header', JSON.stringify({ header: header() }).slice(0, 60));
  shard('header-null', lines(null, rows).replace(/^\{"header":null\}/, 'null'));
  shard('header-array', `[1,2]\n${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  shard('header-queries-string', lines(header({ queries: '2' }), rows));
  shard('header-queries-huge', lines(header({ queries: 1e12 }), rows));
  shard('header-bits-zero', lines(header({ bits: 0 }), rows));
  shard('header-methods-null', lines(header({ methods: null }), rows));
  shard('header-shard-null', lines(header({ shard: null }), rows));
  shard('null-line', lines(header(), [...rows.slice(0, 2), null, ...rows.slice(2)]));
  shard('line-array', lines(header(), [...rows.slice(0, 2), [1, 2], ...rows.slice(2)]));
  shard('line-ap-string', lines(header(), [row('original', 0, { ap: '0.5' }), ...rows.slice(1)]));
  shard('line-position-out', lines(header(), [row('original', 7), ...rows.slice(1)]));
  shard(
    'line-precision-short',
    lines(header(), [row('original', 0, { precision: [0.5] }), ...rows.slice(1)]),
  );
  shard('line-label-null', lines(header(), [row('original', 0, { label: null }), ...rows.slice(1)]));
  shard('byte-order-mark', `\ufeff${lines(header(), rows)}`);
  shard(
    'shard0',
    lines(
      header({ shard: { index: 0, count: 2 } }),
      rows.filter((r) => r.position === 0),
    ),
  );
  shard(
    'other-run',
    lines(
      header({ seed: 4, shard: { index: 1, count: 2 } }),
      rows.filter((r) => r.position === 1),
    ),
  );
  shard(
    'shard1of3',
    lines(
      header({ shard: { index: 1, count: 3 } }),
      rows.filter((r) => r.position === 1),
    ),
  );

  // Attack output folders to resume, each holding a damaged results.jsonl.
  const goodHeaderLine = JSON.stringify({ header: header() });
  const resume = (name: string, text: string | Uint8Array | null) => {
    mkdirSync(O(name), { recursive: true });
    if (text === null) mkdirSync(join(O(name), 'results.jsonl'));
    else writeFileSync(join(O(name), 'results.jsonl'), text);
  };
  resume('empty', '');
  resume('random', bytes(4096));
  resume('truncated-header', `${goodHeaderLine.slice(0, 50)}`);
  resume('edited-header', `${goodHeaderLine.replace('"bits":4', '"bits":"4"')}\n`);
  resume('null-line', `${goodHeaderLine}\nnull\n`);
  resume('edited-line', `${goodHeaderLine}\n${JSON.stringify(row('original', 0, { seconds: -1 }))}\n`);
  resume('folder', null);
  // Output folders whose files are folders.
  mkdirSync(join(O('ids-folder'), 'ids.npy'), { recursive: true });
  mkdirSync(join(O('metrics-folder'), 'metrics.json'), { recursive: true });
}

// ---------------------------------------------------------------------------------------------------------
// Running and judging.

interface Run {
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs at most `limit` CLI processes at once (the machine is shared). */
let running = 0;
const queue: Array<() => void> = [];
async function slot<T>(limit: number, f: () => Promise<T>): Promise<T> {
  if (running >= limit) await new Promise<void>((ok) => queue.push(ok));
  running++;
  try {
    return await f();
  } finally {
    running--;
    queue.shift()?.();
  }
}

function dhta(args: string[], timeoutMs: number): Promise<Run> {
  return slot(
    3,
    () =>
      new Promise((ok) => {
        const p = spawn(process.execPath, [CLI, ...args], {
          env: { ...process.env, DHTA_CACHE: cache, DHTA_DEBUG: '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d) => {
          stdout += d;
        });
        p.stderr.on('data', (d) => {
          stderr += d;
        });
        const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
        p.on('close', (code, signal) => {
          clearTimeout(timer);
          ok({ pid: p.pid, code, signal, stdout, stderr });
        });
      }),
  );
}

/** The state of a path: absent, a file (its size), or a folder (its entries, recursively). */
function snapshot(path: string): string {
  if (!existsSync(path)) return 'absent';
  const st = statSync(path);
  if (!st.isDirectory()) return `file ${st.size}`;
  const entries: string[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const rel = `${prefix}${e.name}`;
      if (e.isDirectory()) {
        entries.push(`${rel}/`);
        walk(join(dir, e.name), `${rel}/`);
      } else entries.push(`${rel} ${statSync(join(dir, e.name)).size}`);
    }
  };
  walk(path, '');
  return entries.join('\n');
}

/** Messages that are a JavaScript engine's or Node's words, not ours. */
const RAW =
  /is not a function|Cannot read properties|Cannot set properties|undefined|Invalid typed array length|Invalid array length|Array buffer allocation failed|URI malformed|Unexpected token|Unexpected end of JSON|in JSON at position|is not iterable|is not defined|Maximum call stack|\bE[A-Z]{3,}\b: |\[E[A-Z]+\]|ENOENT|EISDIR|ENOTDIR|EACCES|EEXIST|ERR_[A-Z_]+|\[object Object\]|RangeError|TypeError|SyntaxError/;
/** Lines that a driver prints and the CLI cannot silence (Dawn's notes on clamped limits). */
const DRIVER_NOISE = /^Warning: max\w+ artificially reduced/;

function judge(c: Case, r: Run, before: string[]): string[] {
  const problems: string[] = [];
  if (r.signal) problems.push(`killed by ${r.signal}`);
  if (r.code === 0) problems.push('exit code 0');
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !DRIVER_NOISE.test(l));
  const first = lines.findIndex((l) => l.startsWith('dhta: error'));
  if (first < 0) problems.push('no "dhta: error" line on stderr');
  else {
    const tail = lines.slice(first);
    if (tail.length > 2 || (tail.length === 2 && !tail[1].startsWith('hint: ')))
      problems.push(`more than an error and a hint: ${JSON.stringify(tail.slice(1, 4))}`);
    const raw = lines.find((l) => RAW.test(l));
    if (raw) problems.push(`raw engine message: ${raw.slice(0, 300)}`);
    if (tail[0].length > 1000) problems.push(`an error line of ${tail[0].length} characters`);
  }
  const stack = lines.find((l) => /^\s+at /.test(l));
  if (stack) problems.push(`stack line: ${stack.trim()}`);
  for (const [i, p] of c.watch.entries()) {
    const after = snapshot(p);
    if (after !== before[i])
      problems.push(`${p} changed: ${JSON.stringify(before[i])} -> ${JSON.stringify(after)}`);
    const parent = dirname(p);
    if (existsSync(parent) && statSync(parent).isDirectory()) {
      // Cases run side by side: a temporary name with another process's id belongs to a case still running
      // (the sweep after all cases catches it if it stays).
      const tmp = readdirSync(parent).filter((n) => TEMP.test(n) && !otherProcess(n, r.pid));
      if (tmp.length) problems.push(`temporary files left in ${parent}: ${tmp.join(', ')}`);
    }
  }
  return problems;
}

/** Names of temporary files and folders the CLI writes (`X.tmp-PID...`, `.X.old-PID-...`, `.dhta-...`). */
const TEMP = /\.tmp-|\.old-|^\.dhta-/;

/** Whether a temporary name carries a process id other than `pid`. */
function otherProcess(name: string, pid: number | undefined): boolean {
  const ids = [...name.matchAll(/\.(?:tmp|old)-(\d+)/g)].map((m) => Number(m[1]));
  return ids.length > 0 && !ids.includes(pid ?? -1);
}

/** Every temporary name under `dir`, with its path relative to `dir`. */
function temporaryNames(dir: string): string[] {
  const found: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (TEMP.test(e.name)) found.push(relative(dir, join(e.parentPath, e.name)));
  }
  return found;
}

const failures: Array<{ id: string; problems: string[]; stderr: string }> = [];

describe('bad command lines and bad input files: one clear line, nothing left behind', () => {
  beforeAll(async () => {
    await buildCli();
    await writeFixtures();
    console.log(`bad-input sweep: ${cases.length} cases over every command`);
  }, 300_000);

  afterAll(() => {
    // Once every case has ended, no temporary name may remain anywhere under the fixtures.
    const left = temporaryNames(root);
    if (left.length)
      failures.push({
        id: 'after all cases',
        problems: [`temporary files left: ${left.join(', ')}`],
        stderr: '',
      });
    console.log(`bad-input sweep: ${cases.length} cases, ${failures.length} failed`);
    for (const f of failures)
      console.log(
        `FAILED ${f.id}: ${f.problems.join('; ')}\n  ${f.stderr.trim().split('\n').slice(-3).join('\n  ')}`,
      );
    // The fixtures (some tens of MB of model copies) stay only when something failed, for a look.
    if (failures.length === 0) rmSync(root, { recursive: true, force: true });
    else console.log(`bad-input sweep: fixtures and outputs kept in ${root}`);
    expect(left, 'temporary files left under the fixtures after all cases').toEqual([]);
  });

  it.concurrent.each(cases.map((c) => [c.id, c] as const))(
    '%s',
    async (_id, c) => {
      const before = c.watch.map(snapshot);
      const r = await dhta(c.args, 90_000);
      const problems = judge(c, r, before);
      if (problems.length) failures.push({ id: c.id, problems, stderr: r.stderr });
      expect(problems, `dhta ${c.args.join(' ')}\nstderr:\n${r.stderr}`).toEqual([]);
    },
    600_000,
  );
});
