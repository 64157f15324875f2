/** Small numeric helpers for the benchmark: percentiles over collected samples. */

/** Percentile (nearest rank) of an unsorted sample; NaN when empty. `p` in [0, 100]. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
  return sorted[rank]!;
}

export type Summary = { n: number; p50: number; p95: number; p99: number; max: number; mean: number };

/** p50/p95/p99/max/mean of a sample (copied and sorted; the input is not changed). */
export function summarize(values: ArrayLike<number>): Summary {
  const a = Float64Array.from(values as ArrayLike<number>).sort();
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]!;
  return {
    n: a.length,
    p50: percentile(a, 50),
    p95: percentile(a, 95),
    p99: percentile(a, 99),
    max: a.length ? a[a.length - 1]! : Number.NaN,
    mean: a.length ? sum / a.length : Number.NaN,
  };
}

/** A growable Float64 buffer: cheap appends on hot paths, no per-sample objects. */
export class Samples {
  private buf = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }
  view(): Float64Array {
    return this.buf.subarray(0, this.length);
  }
  summary(): Summary {
    return summarize(this.view());
  }
}

/** Milliseconds with sub-ms resolution on the wall clock (same clock in every part of this process). */
export const nowMs = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Round for display: <10 → 2 decimals, <100 → 1, else integer. */
export function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return "∞";
  const a = Math.abs(v);
  if (a < 10) return v.toFixed(2);
  if (a < 100) return v.toFixed(1);
  return Math.round(v).toLocaleString("en-US");
}

/** Longest a profile read may take (bench/lib/profile.ts): it waits behind whatever the fleet
 * object has queued, and on a loaded machine that can be seconds. */
export const PROFILE_TIMEOUT_MS = 10_000;

export type Spread = { min: number; median: number; max: number };

/** Median (the mean of the two middle values of an even count); NaN when empty or all NaN. */
export function median(values: readonly number[]): number {
  const a = values.filter((v) => !Number.isNaN(v)).sort((x, y) => x - y);
  if (!a.length) return Number.NaN;
  const m = a.length >> 1;
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

export function spread(values: readonly number[]): Spread {
  const a = values.filter((v) => !Number.isNaN(v));
  return { min: a.length ? Math.min(...a) : Number.NaN, median: median(a), max: a.length ? Math.max(...a) : Number.NaN };
}
