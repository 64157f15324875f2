/**
 * Time as the link sees it: the wall clock (seqs, `sent_at`, ack times), one-shot timers (batch
 * window, reconnect backoff, hello timeout, heartbeat, stable-connection reset, command deadlines,
 * the stop grace) and `defer`, the next macrotask (an idle link's flush, so that the samples of one
 * event-loop turn share a frame). Injected so that tests drive time by hand instead of sleeping;
 * the default is the real clock.
 */

/** A scheduled callback; cancelling twice, or after it ran, does nothing. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall clock, ms since the epoch. */
  now(): number;
  /** Run `fn` once, `ms` from now. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Cancel a timer; null and undefined are ignored (so callers need no guard). */
  clearTimeout(timer: Timer | null | undefined): void;
  /**
   * Run `fn` once in the next macrotask, after the I/O callbacks of the current turn (the real
   * clock's setImmediate: no timer granularity, so no added millisecond). A test clock may treat
   * it as a timer due now.
   */
  defer(fn: () => void): Timer;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const id = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(id) };
  },
  clearTimeout(timer) {
    timer?.cancel();
  },
  defer(fn) {
    const id = setImmediate(fn);
    return { cancel: () => clearImmediate(id) };
  },
};
