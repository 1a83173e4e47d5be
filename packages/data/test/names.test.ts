// Data set names from the command line: bad percent-encoding and absurd sizes are one clear DataError, not a
// JavaScript error from deep inside (URI malformed, Invalid typed array length).
import { describe, expect, it } from 'vitest';
import { DataError, parseName } from '../src/index.js';
import { openDataset } from '../src/open.js';

describe('data set names', () => {
  it('refuses malformed percent-encoding with the parameter named', () => {
    expect(() => parseName('folder:/tmp?resize=%zz')).toThrow(DataError);
    expect(() => parseName('folder:/tmp?resize=%zz')).toThrow(
      /parameter "resize" is not valid percent-encoding/,
    );
    expect(parseName('folder:/tmp?resize=28%78%32%38').params.get('resize')).toBe('28x28');
  });

  it('refuses resize and crop sides past 16384 before loading anything', async () => {
    await expect(openDataset('folder:/nonexistent-dhta?resize=200000x100000', { seed: 0 })).rejects.toThrow(
      /parameter resize must be N or HxW pixels, each from 1 to 16384, found "200000x100000"/,
    );
    await expect(openDataset('folder:/nonexistent-dhta?crop=99999', { seed: 0 })).rejects.toThrow(
      /parameter crop must be N or HxW pixels/,
    );
  });
});
