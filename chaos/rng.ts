import { seededRandom } from "../edge/domain/random";

/** The fault schedule's PRNG: the same seed gives the same schedule (0 counts as 1). */
export const seeded = (seed: number) => seededRandom(seed >>> 0 || 1);

/** Uniform in [lo, hi). */
export const between = (r: () => number, lo: number, hi: number) => lo + r() * (hi - lo);

/** Fisher–Yates with the given PRNG; returns a new array. */
export function shuffled<T>(r: () => number, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
