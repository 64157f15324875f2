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
