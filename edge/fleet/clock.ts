/**
 * The fleet object's clock: the one place its modules read the time from. The object takes a
 * Clock (default: the system clock), so tests inside workerd move time by swapping in their own
 * clock on the instance instead of reaching into private fields.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** What one reading of a budget clock counts for where the real clock is frozen (`budgetClock`). */
export const FROZEN_READING_MS = 1;
/** How long the probe of `budgetClock` works at most before it calls the clock frozen: 655,360
 * iterations, ~5 ms in a local workerd on this project's CI machine (the clock there moves within
 * the first millisecond). */
const PROBE_ROUNDS = 40;
const PROBE_ROUND_ITERATIONS = 16_384;
let probeSink = 0;

/**
 * Whether `real` advances while code runs: a loop of ~5 ms at most, reading the clock between
 * rounds, that stops as soon as it moves (well under a millisecond in Node and in local workerd).
 */
export function clockRuns(real: () => number): boolean {
  const t = real();
  let x = probeSink;
  for (let r = 0; r < PROBE_ROUNDS; r++) {
    for (let i = 0; i < PROBE_ROUND_ITERATIONS; i++) x = (x * 31 + i) | 0;
    if (real() !== t) {
      probeSink = x;
      return true;
    }
  }
  probeSink = x;
  return false;
}

/**
 * The clock the fleet object's work budgets inside one turn are read off (collision avoidance:
 * a pass's 8 ms, its detection and resolutions stepped across turns). Where `real` runs during
 * execution (Node, `wrangler dev`, workerd locally) it is `real`. Deployed on Cloudflare,
 * `performance.now()` only advances on I/O (a Spectre mitigation): inside a turn it reads the same
 * however long the work takes, and a budget read off it would never run out, so every turn would
 * run its work to the end. There every reading counts FROZEN_READING_MS on top: the budgets'
 * callers read the clock once per step, so a turn makes about budget / FROZEN_READING_MS steps
 * (a step is a few hundred µs to a couple of ms at a thousand drones, locally). Which of the two
 * is found by `clockRuns` at the first reading.
 */
export function budgetClock(real: () => number = () => performance.now()): () => number {
  let frozen: boolean | null = null;
  let extra = 0;
  return () => {
    frozen ??= !clockRuns(real);
    if (frozen) extra += FROZEN_READING_MS;
    return real() + extra;
  };
}
