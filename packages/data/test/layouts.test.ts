import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDataset, parseName, sampleFrames } from '../src/index.js';
import { dataError, histogram, range, tempDir, writeImage } from './helpers.js';

const small = 'resize=8x6&crop=4'; // every image 8 high, 6 wide, then a centre 4x4 crop

/** root/img/<c>_<k>.png with red = 10 * c + k, and list lines for them. */
async function listTree(classes: number, perClass: number) {
  const root = tempDir('list');
  const lines: string[] = [];
  for (let c = 0; c < classes; c++) {
    for (let k = 0; k < perClass; k++) {
      const rel = `img/${c}_${k}.png`;
      await writeImage(join(root, rel), 6, 8, 10 * c + k);
      const labels = range(classes).map((j) => (j === c || (c === 0 && j === 1) ? 1 : 0));
      lines.push(`${rel} ${labels.join(' ')}`);
    }
  }
  return { root, lines };
}

describe("the authors' list files", () => {
  it('reads train/database/query lists with multi-hot labels; paths relative to the root', async () => {
    const { root, lines } = await listTree(3, 4);
    writeFileSync(join(root, 'train.txt'), `${lines.slice(0, 3).join('\n')}\n`);
    writeFileSync(join(root, 'database.txt'), lines.join('\r\n'));
    writeFileSync(join(root, 'test.txt'), `\n${lines[5]}\n\n`);
    const d = await openDataset(`list:${root}?${small}`);
    expect(d.info.protocol).toBe('lists');
    expect(d.info.splits).toEqual({ train: 3, database: 12, query: 1 });
    expect(d.database.classes).toBe(3);
    expect(Array.from(d.database.label(0))).toEqual([1, 1, 0]); // class 0 items also carry label 1
    expect(Array.from(d.query.label(0))).toEqual([0, 1, 0]);
    const x = await d.query.load([0]);
    expect(x.length).toBe(3 * 4 * 4);
    expect(Math.round(x[0] * 255)).toBe(11); // red of img/1_1.png
    // Default preprocessing: the authors' 256 -> 224.
    const full = await openDataset(`list:${root}?query=test.txt`);
    expect(full.info.itemShape).toEqual([3, 224, 224]);
  });

  it('names the file and line of a line with the wrong number of labels, or a bad label', async () => {
    const { root, lines } = await listTree(3, 2);
    writeFileSync(join(root, 'train.txt'), `${lines[0]}\n${lines[1]}\nimg/0_0.png 1 0\n`);
    writeFileSync(join(root, 'database.txt'), lines.join('\n'));
    writeFileSync(join(root, 'test.txt'), `${lines[0]}\nimg/0_0.png 1 0 2\n`);
    const e = await dataError(() => openDataset(`list:${root}?${small}`));
    expect(e.code).toBe('BAD_LIST');
    expect(e.message).toContain(`${join(root, 'train.txt')}:3:`);
    expect(e.message).toMatch(/expected 3 labels.*found 2/);
    writeFileSync(join(root, 'train.txt'), lines.join('\n'));
    const b = await dataError(() => openDataset(`list:${root}?${small}`));
    expect(b.message).toContain(`${join(root, 'test.txt')}:2:`);
    expect(b.message).toMatch(/label 2 is "2", expected 0 or 1/);
    writeFileSync(join(root, 'test.txt'), `${lines[0]}\n`);
    const other = await dataError(() => openDataset(`list:${root}?${small}&query=nope.txt`));
    expect(other.code).toBe('MISSING_FILE');
    expect(other.message).toContain('nope.txt');
  });

  it('a listed image that is missing or does not decode fails its load, naming the file', async () => {
    const { root, lines } = await listTree(2, 2);
    writeFileSync(join(root, 'img/broken.png'), 'not a png');
    writeFileSync(join(root, 'all.txt'), [...lines, 'img/missing.png 1 0', 'img/broken.png 0 1'].join('\n'));
    const d = await openDataset(`list:${root}?${small}&train=all.txt&database=all.txt&query=all.txt`);
    expect((await d.database.load([0, 1])).length).toBe(2 * 48);
    const m = await dataError(() => d.database.load([4]));
    expect(m.code).toBe('MISSING_FILE');
    expect(m.message).toContain(join(root, 'img/missing.png'));
    const b = await dataError(() => d.database.load([5]));
    expect(b.code).toBe('BAD_IMAGE');
    expect(b.message).toContain(join(root, 'img/broken.png'));
  });

  it('one list (all=F): NUS-WIDE-style, the most frequent labels, queries, database and training subset', async () => {
    const root = tempDir('nus');
    const lines: string[] = [];
    await writeImage(join(root, 'x.png'), 6, 8, 1);
    // 5 labels; label 4 is the rarest, items with only label 4 drop out when keeping the top 4.
    for (let i = 0; i < 60; i++) {
      const l = [i % 2, i % 3 === 0 ? 1 : 0, i % 5 === 0 ? 1 : 0, i % 2 === 0 ? 0 : 1, i === 7 ? 1 : 0];
      if (i === 59) l.splice(0, 5, 0, 0, 0, 0, 1);
      lines.push(`x.png ${l.join(' ')}`);
    }
    writeFileSync(join(root, 'all.txt'), lines.join('\n'));
    const d = await openDataset(`list:${root}?all=all.txt&top-labels=4&queries=10&train-size=20&${small}`, {
      seed: 3,
    });
    expect(d.info.protocol).toBe('nus-wide');
    expect(d.info.classes).toBe(4);
    expect(d.info.classNames).toEqual(['0', '1', '2', '3']);
    // 17 of the 60 items carry none of labels 0..3 (the even ones not divisible by 3 or 5, and item 59).
    expect(d.info.splits).toEqual({ train: 20, database: 33, query: 10 });
    for (const split of [d.train, d.database, d.query])
      for (let i = 0; i < split.length; i++) expect(split.label(i).some((v) => v === 1)).toBe(true);
    const again = await openDataset(
      `list:${root}?all=all.txt&top-labels=4&queries=10&train-size=20&${small}`,
      { seed: 3 },
    );
    expect(Array.from(again.query.labels())).toEqual(Array.from(d.query.labels()));
    const few = await dataError(() => openDataset(`list:${root}?all=all.txt&queries=100&${small}`));
    expect(few.message).toMatch(/not more than the 100 queries/);
  });
});

describe('image folders', () => {
  it('root/<class>/<image>: classes from folder names, per-class query/train split', async () => {
    const root = tempDir('folder');
    for (const [c, name] of ['cat', 'dog', 'emu'].entries())
      for (let k = 0; k < 5; k++)
        await writeImage(
          join(root, name, `${k}.${k % 2 ? 'jpg' : 'png'}`),
          6,
          8,
          50 * c,
          k % 2 ? 'jpeg' : 'png',
        );
    writeFileSync(join(root, 'cat', 'notes.txt'), 'ignored');
    const d = await openDataset(`folder:${root}?${small}&query-per-class=2`, { seed: 5 });
    expect(d.info.classNames).toEqual(['cat', 'dog', 'emu']);
    expect(d.info.splits).toEqual({ train: 6, database: 3, query: 6 });
    expect(histogram(d.query.labels(), 3)).toEqual([2, 2, 2]);
    const x = await d.query.load(range(6));
    expect(Math.round(x[48 * 5] * 255)).toBeGreaterThan(90); // last query is an emu, red 100 (JPEG: about)
  });

  it('root/train and root/val: ImageNet-style, training subset per class', async () => {
    const root = tempDir('folder-tv');
    for (const split of ['train', 'val'])
      for (const name of ['a', 'b'])
        for (let k = 0; k < 4; k++) await writeImage(join(root, split, name, `${k}.png`), 6, 8, k);
    const d = await openDataset(`folder:${root}?${small}`, { trainPerClass: 3 });
    expect(d.info.protocol).toBe('imagenet');
    expect(d.info.splits).toEqual({ train: 6, database: 8, query: 8 });
  });

  it('a folder with no classes, or a class with no images, is a clear error', async () => {
    const root = tempDir('folder-empty');
    const e = await dataError(() => openDataset(`folder:${root}`));
    expect(e.code).toBe('NO_CLASSES');
    expect(e.message).toContain(root);
    mkdirSync(join(root, 'empty'));
    const c = await dataError(() => openDataset(`folder:${root}`));
    expect(c.message).toMatch(/class "empty" holds no images/);
    const gone = await dataError(() => openDataset(`folder:${join(root, 'nope')}`));
    expect(gone.code).toBe('MISSING_FILE');
  });
});

describe('CIFAR-10 binary batches', () => {
  function batch(n: number, label: (i: number) => number): Buffer {
    const b = Buffer.alloc(n * 3073);
    for (let i = 0; i < n; i++) {
      b[i * 3073] = label(i);
      for (let p = 0; p < 3072; p++) b[i * 3073 + 1 + p] = (i + p) % 256;
    }
    return b;
  }

  it('reads data_batch_1..5 and test_batch lazily, CHW as stored', async () => {
    const dir = tempDir('cifar');
    const sub = join(dir, 'cifar-10-batches-bin');
    mkdirSync(sub);
    for (let f = 1; f <= 5; f++)
      writeFileSync(
        join(sub, `data_batch_${f}.bin`),
        batch(4, (i) => (i + f) % 10),
      );
    writeFileSync(
      join(sub, 'test_batch.bin'),
      batch(3, (i) => i),
    );
    const d = await openDataset(`cifar10:${dir}`, { trainPerClass: 1 });
    // Labels (i + f) mod 10 cover classes 1..8 only: one training item for each of those 8.
    expect(d.info.splits).toEqual({ train: 8, database: 20, query: 3 });
    expect(d.info.classNames[0]).toBe('airplane');
    const x = await d.database.load([5]); // batch 2, record 1
    expect(Math.round(x[0] * 255)).toBe(1);
    expect(Math.round(x[3071] * 255)).toBe((1 + 3071) % 256);
    expect(Array.from(d.database.label(5)).indexOf(1)).toBe(3);
  });

  it('a truncated batch or a label above 9 names the file', async () => {
    const dir = tempDir('cifar-bad');
    for (let f = 1; f <= 5; f++)
      writeFileSync(
        join(dir, `data_batch_${f}.bin`),
        batch(2, () => 0),
      );
    writeFileSync(join(dir, 'test_batch.bin'), batch(2, () => 0).subarray(0, 5000));
    const e = await dataError(() => openDataset(`cifar10:${dir}`));
    expect(e.code).toBe('TRUNCATED');
    expect(e.message).toContain(join(dir, 'test_batch.bin'));
    writeFileSync(
      join(dir, 'test_batch.bin'),
      batch(2, (i) => 10 + i),
    );
    const l = await dataError(() => openDataset(`cifar10:${dir}`));
    expect(l.message).toMatch(/record 0 has label 10/);
  });
});

describe('video as folders of frames', () => {
  async function frameTree(classes: number, clipsPerClass: number, frames: (c: number, k: number) => number) {
    const root = tempDir('frames');
    for (let c = 0; c < classes; c++)
      for (let k = 0; k < clipsPerClass; k++)
        for (let f = 0; f < frames(c, k); f++)
          await writeImage(join(root, `class${c}`, `clip${k}`, `frame${f + 1}.png`), 6, 8, f);
    return root;
  }

  it('samples the first T frames or every 3rd, in natural order, padding short clips with their last frame', async () => {
    expect(sampleFrames(12, { mode: 'first', frames: 4 })).toEqual([0, 1, 2, 3]);
    expect(sampleFrames(12, { mode: 'every3', frames: 40 }).slice(0, 5)).toEqual([0, 3, 6, 9, 9]);
    expect(sampleFrames(200, { mode: 'every3', frames: 40 })).toEqual(range(40).map((i) => 3 * i));
    const root = await frameTree(2, 3, () => 11); // frame11 sorts after frame2 naturally
    const d = await openDataset(`frames:${root}?${small}&frames=5&query-per-class=1&sampling=every3`);
    expect(d.info.kind).toBe('video');
    expect(d.info.itemShape).toEqual([5, 3, 4, 4]);
    expect(d.info.splits).toEqual({ train: 2, database: 2, query: 2 });
    const x = await d.database.load([0]);
    expect(range(5).map((t) => Math.round(x[t * 48] * 255))).toEqual([0, 3, 6, 9, 9]);
    const first = await openDataset(`frames:${root}?${small}&frames=3&query-per-class=1`);
    const y = await first.query.load([0]);
    expect(range(3).map((t) => Math.round(y[t * 48] * 255))).toEqual([0, 1, 2]);
  });

  it('a clip folder with no frames names the clip', async () => {
    const root = await frameTree(1, 1, () => 2);
    mkdirSync(join(root, 'class0', 'clip9'));
    const e = await dataError(() => openDataset(`frames:${root}?${small}`));
    expect(e.code).toBe('NO_FRAMES');
    expect(e.message).toContain(join(root, 'class0', 'clip9'));
    const none = await dataError(() => openDataset(`frames:${tempDir('nothing')}`));
    expect(none.code).toBe('NO_CLASSES');
  });
});

describe('names', () => {
  it('parses NAME[:PATH][?k=v&...] and rejects what it does not know', async () => {
    expect(parseName('list:/d?train=a.txt').params.get('train')).toBe('a.txt');
    expect(parseName('mnist').path).toBeUndefined();
    for (const [bad, pattern] of [
      ['imagenet', /unknown data set "imagenet"/],
      ['folder', /folder needs a path/],
      ['folder:', /expected a path/],
      ['mnist?resize=3', /unknown parameter "resize" for mnist; it takes none/],
      ['folder:/x?crop=abc', /crop must be N or HxW/],
      ['frames:/x?sampling=', /needs a value/],
    ] as const) {
      const e = await dataError(() => openDataset(bad));
      expect(e.code).toBe('BAD_NAME');
      expect(e.message).toMatch(pattern);
    }
    const s = await dataError(() => openDataset('mnist', { seed: -1 }));
    expect(s.code).toBe('BAD_OPTION');
  });
});
