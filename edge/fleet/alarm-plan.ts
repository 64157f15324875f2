/**
 * Which of the fleet object's clocks are due. A Durable Object has one alarm; it serves
 *  - the status tick every 5 s (fleet_status, stale sweep, and the analytics tick), while any
 *    socket is open or a drone is still live and may go stale;
 *  - detection passes every 500 ms while a drone is airborne (collision avoidance);
 *  - the earliest command deadline (the ledger's timeouts);
 *  - the earliest token expiry of an open socket (closed then with 4001);
 *  - the earliest time a throttled dashboard (max_rate_hz) has samples due (fan-out.ts).
 * Each clock runs when it is due: an alarm set for a command deadline does not run the others
 * early. Pure bookkeeping: the fleet object reads and sets the alarm itself.
 */
import { LIMITS } from "../protocol";
import { DETECT_INTERVAL_MS } from "./collision-avoidance";

/** A clock within this many ms of its due time runs now rather than in a separate alarm. */
const EARLY_MS = 20;

export type AlarmNeeds = {
  /** Sockets open or drones live: the status tick is wanted. */
  status: boolean;
  /** A drone is airborne: detection passes are wanted. */
  detection: boolean;
  /** Earliest command deadline, or null. */
  deadline: number | null;
  /** Earliest token expiry of an open socket, or null. */
  expiry?: number | null;
  /** Earliest time throttled samples are due, or null. */
  flush?: number | null;
};

export class AlarmPlan {
  /** When the next fleet_status is due; null until the status tick is first wanted. */
  private statusDueAt: number | null = null;
  /** When the next detection pass is due; null until a drone is first airborne. */
  private detectDueAt: number | null = null;

  /** Whether detection passes are planned (a new airborne drone needs the alarm set once). */
  get detectionPlanned(): boolean {
    return this.detectDueAt !== null;
  }

  /**
   * What this alarm runs at `now`. What runs is marked done until its next interval before it
   * runs, so a pass that throws is tried again an interval later, not in a tight loop of alarms.
   */
  take(now: number, airborne: boolean): { detect: boolean; status: boolean } {
    const due = (at: number | null) => at === null || now >= at - EARLY_MS;
    const detect = due(this.detectDueAt) && airborne;
    const status = due(this.statusDueAt);
    if (detect) this.detectDueAt = now + DETECT_INTERVAL_MS;
    if (status) this.statusDueAt = now + LIMITS.statusIntervalMs;
    return { detect, status };
  }

  /** When the alarm should fire next, or null when nothing is wanted. */
  next(now: number, needs: AlarmNeeds): number | null {
    const wants: number[] = [];
    if (needs.status) wants.push((this.statusDueAt ??= now + LIMITS.statusIntervalMs));
    if (needs.deadline !== null) wants.push(needs.deadline);
    if (typeof needs.expiry === "number") wants.push(needs.expiry);
    if (typeof needs.flush === "number") wants.push(needs.flush);
    if (needs.detection) wants.push((this.detectDueAt ??= now + DETECT_INTERVAL_MS));
    if (!wants.length) return null;
    // A due time already past (a slow pass, a clock moved by a test) fires at the next moment.
    return Math.max(Math.min(...wants), now + 1);
  }
}
