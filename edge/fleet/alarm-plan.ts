/**
 * Which of the fleet object's clocks are due. A Durable Object has one alarm; it serves
 *  - the status tick every 5 s (fleet_status, stale sweep, and the analytics tick), while any
 *    socket is open or a drone is still live and may go stale;
 *  - detection passes every 500 ms while a drone is airborne (collision avoidance), brought
 *    forward to EARLY_PASS_GAP_MS after the last pass when telemetry changed a drone's predicted
 *    path (a turn, a new route: `soon`);
 *  - the earliest command deadline (the ledger's timeouts);
 *  - the earliest token expiry of an open socket (closed then with 4001);
 *  - the earliest time a throttled dashboard (max_rate_hz) has samples due (fan-out.ts);
 *  - a resolution turn RESUME_GAP_MS after a pass (or turn) that left conflicts it had no time
 *    for (collision-avoidance.ts `resume`), until the next pass.
 * Each clock runs when it is due: an alarm set for a command deadline does not run the others
 * early. Pure bookkeeping: the fleet object reads and sets the alarm itself.
 */
import { LIMITS } from "../protocol";
import { DETECT_INTERVAL_MS } from "./collision-avoidance";

/** A clock within this many ms of its due time runs now rather than in a separate alarm. */
const EARLY_MS = 20;
/** The same for a resolution turn. */
const RESUME_EARLY_MS = 2;
/**
 * The shortest time between two detection passes when telemetry asks for an early one. At a
 * thousand moving drones some drone turns in every tenth of a second, so this is the pass rate
 * then: 5 passes a second, a change waits at most this long instead of the 500 ms interval.
 */
export const EARLY_PASS_GAP_MS = 200;

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
  /** When the last detection pass ran. */
  private lastDetectAt: number | null = null;
  /** When the next resolution turn is due; null when no conflict waits for one. */
  private resumeDueAt: number | null = null;

  /** Whether detection passes are planned (a new airborne drone needs the alarm set once). */
  get detectionPlanned(): boolean {
    return this.detectDueAt !== null;
  }

  /**
   * What this alarm runs at `now`. What runs is marked done until its next interval before it
   * runs, so a pass that throws is tried again an interval later, not in a tight loop of alarms.
   */
  take(now: number, airborne: boolean): { detect: boolean; status: boolean; resume: boolean } {
    const due = (at: number | null) => at === null || now >= at - EARLY_MS;
    const detect = due(this.detectDueAt) && airborne;
    const status = due(this.statusDueAt);
    // A pass makes its own list: a turn due with it is not run. A turn is not run early (its gap
    // is shorter than EARLY_MS): the gap is the telemetry's time.
    const resume = !detect && airborne && this.resumeDueAt !== null && now >= this.resumeDueAt - RESUME_EARLY_MS;
    if (detect) {
      this.detectDueAt = now + DETECT_INTERVAL_MS;
      this.lastDetectAt = now;
    }
    if (detect || resume) this.resumeDueAt = null;
    if (status) this.statusDueAt = now + LIMITS.statusIntervalMs;
    return { detect, status, resume };
  }

  /** After a pass or a resolution turn: the next turn at `at`, or none (null). */
  resumeAt(at: number | null): void {
    this.resumeDueAt = at;
  }

  /**
   * A pass is wanted early (collision-avoidance.ts `passWanted`): bring the next one forward to
   * EARLY_PASS_GAP_MS after the last (at once if that is past). True when the due time moved, so
   * the caller sets the alarm; nothing changes while no pass is planned.
   */
  soon(now: number): boolean {
    if (this.detectDueAt === null) return false;
    const at = Math.max(now, (this.lastDetectAt ?? now) + EARLY_PASS_GAP_MS);
    if (at >= this.detectDueAt) return false;
    this.detectDueAt = at;
    return true;
  }

  /** When the alarm should fire next, or null when nothing is wanted. */
  next(now: number, needs: AlarmNeeds): number | null {
    const wants: number[] = [];
    if (needs.status) wants.push((this.statusDueAt ??= now + LIMITS.statusIntervalMs));
    if (needs.deadline !== null) wants.push(needs.deadline);
    if (typeof needs.expiry === "number") wants.push(needs.expiry);
    if (typeof needs.flush === "number") wants.push(needs.flush);
    if (needs.detection) wants.push((this.detectDueAt ??= now + DETECT_INTERVAL_MS));
    if (needs.detection && this.resumeDueAt !== null) wants.push(this.resumeDueAt);
    if (!wants.length) return null;
    // A due time already past (a slow pass, a clock moved by a test) fires at the next moment.
    return Math.max(Math.min(...wants), now + 1);
  }
}
