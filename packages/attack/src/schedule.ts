// The tanh scale alpha over the iterations (PROTOCOL.md, "DHTA objective and optimisation").

/** 'paper': 0.1 for the first half, then 0.2, 0.3, 0.5, 0.7, 1.0 for five equal blocks; a number: constant. */
export type AlphaSchedule = 'paper' | number;

const PAPER_BLOCKS = [0.2, 0.3, 0.5, 0.7, 1.0];

/**
 * alpha at iteration `iteration` (0-based) of `iterations`. With 2000 iterations the paper's schedule gives
 * 0.1 for 0-999, 0.2 for 1000-1199, ..., 1.0 for 1800-1999; other counts scale the block boundaries
 * proportionally (boundaries at floor(iterations * k / 10), k = 5..9).
 */
export function alphaAt(iteration: number, iterations: number, schedule: AlphaSchedule): number {
  if (typeof schedule === 'number') return schedule;
  // The last tenth boundary floor(iterations * b / 10) at or before this iteration.
  let block = 0;
  for (let b = 1; b <= 9; b++) if (iteration >= Math.floor((iterations * b) / 10)) block = b;
  if (block < 5) return 0.1;
  return PAPER_BLOCKS[block - 5];
}

/** The distinct (start, alpha) segments of a schedule, for reports and progress lines. */
export function alphaSegments(
  iterations: number,
  schedule: AlphaSchedule,
): { from: number; alpha: number }[] {
  const out: { from: number; alpha: number }[] = [];
  for (let i = 0; i < iterations; i++) {
    const a = alphaAt(i, iterations, schedule);
    if (out.length === 0 || out[out.length - 1].alpha !== a) out.push({ from: i, alpha: a });
  }
  return out;
}
