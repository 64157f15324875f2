/**
 * A clock for relay tests that moves only when the test says so: `advance(ms)` runs every timer
 * that falls due, in order, synchronously, with `now()` at each timer's due time. Sockets stay
 * real; only the link's own time (batch window, an idle link's deferred flush, backoff, heartbeat,
 * hello timeout, command deadlines, the stop grace) is driven by hand, so a test asserts "not yet"
 * at 99 ms and "now" at 100 ms instead of sleeping, and "at once" with `advance(0)`.
 */
import type { Clock, Timer } from "../../relay/link/clock";

type Entry = { due: number; order: number; fn: () => void; live: boolean };

export class FakeClock implements Clock {
  private t: number;
  private order = 0;
  private entries: Entry[] = [];
  private waiters: (() => void)[] = [];

  constructor(start = Date.now()) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const e: Entry = { due: this.t + Math.max(0, ms), order: this.order++, fn, live: true };
    this.entries.push(e);
    for (const w of this.waiters.splice(0)) w();
    return { cancel: () => (e.live = false) };
  }

  clearTimeout(timer: Timer | null | undefined): void {
    timer?.cancel();
  }

  /** The next macrotask, here a timer due now: `advance(0)` runs it, time does not move. */
  defer(fn: () => void): Timer {
    return this.setTimeout(fn, 0);
  }

  /** Move time forward by `ms`, running each timer due by then (timers they set included). */
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      const next = this.live().filter((e) => e.due <= target)[0];
      if (!next) break;
      next.live = false;
      this.t = next.due;
      next.fn();
    }
    this.t = target;
    this.entries = this.live();
  }

  /** Delays (from now) of the timers still to run, soonest first. */
  pending(): number[] {
    return this.live().map((e) => e.due - this.t);
  }

  /** Resolves once some timer is pending (e.g. the reconnect after a refused connection). */
  async waitForTimer(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.live().length === 0) {
      await new Promise<void>((resolve, reject) => {
        const guard = setTimeout(() => reject(new Error(`no timer was set within ${timeoutMs} ms`)), Math.max(0, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(guard);
          resolve();
        });
      });
    }
  }

  private live(): Entry[] {
    return this.entries.filter((e) => e.live).sort((a, b) => a.due - b.due || a.order - b.order);
  }
}
