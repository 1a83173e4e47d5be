import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SeededRandom } from '@dhta/kernels/reference';

/** An IDX data set of small 28x28 "images" of 3 classes: a bright square whose position is the class. */
export function writeIdx(dir: string, rng: SeededRandom): void {
  mkdirSync(dir, { recursive: true });
  const write = (name: string, n: number) => {
    const images = new Uint8Array(16 + n * 784);
    const labels = new Uint8Array(8 + n);
    new DataView(images.buffer).setUint32(0, 0x803);
    new DataView(images.buffer).setUint32(4, n);
    new DataView(images.buffer).setUint32(8, 28);
    new DataView(images.buffer).setUint32(12, 28);
    new DataView(labels.buffer).setUint32(0, 0x801);
    new DataView(labels.buffer).setUint32(4, n);
    for (let i = 0; i < n; i++) {
      const c = i % 3;
      labels[8 + i] = c;
      for (let p = 0; p < 784; p++) images[16 + i * 784 + p] = Math.floor(rng.next() * 40);
      for (let y = 4; y < 12; y++)
        for (let x = 4 + 7 * c; x < 12 + 7 * c; x++) images[16 + i * 784 + y * 28 + x] = 230;
    }
    writeFileSync(join(dir, `${name}-images-idx3-ubyte`), images);
    writeFileSync(join(dir, `${name}-labels-idx1-ubyte`), labels);
  };
  write('train', 60);
  write('t10k', 15);
}
