/**
 * What a drone's reported state means: the one definition of "airborne" that the collision
 * detector, the fleet object (run detection only while someone flies), fleet_status's `flying`
 * count, the dashboard's live counts and the relay's simulator all use.
 *
 * The rule: a drone is airborne when it is armed and its status is not a grounded one (idle,
 * landed, charging). So taking_off, flying, returning, landing and emergency count as in the
 * air; a disarmed drone never does, whatever its status says (its motors cannot be turning).
 *
 * Unknown is not safe: when the source says it has no reading of the state (`state_known:
 * false`, a ROS 2 drone without a state topic), `armed` and `status` are placeholders, and the
 * drone counts as airborne when its altitude or motion says so (`inferAirborne`). Treating it as
 * grounded would hide a flying drone from collision avoidance.
 *
 * Pure: imports only protocol types.
 */
import type { TelemetrySample } from "../protocol";

export type DroneStatus = TelemetrySample["status"];

/** Statuses of a drone standing on the ground. */
export const GROUNDED_STATUSES: ReadonlySet<DroneStatus> = new Set<DroneStatus>(["idle", "landed", "charging"]);

/** Above this altitude over home a drone of unknown state is taken to be flying, metres. A drone
 * on a roof above home reads as flying too: the safe side. */
export const INFER_AIRBORNE_ALT_M = 3;
/** Above this ground speed a drone of unknown state is taken to be flying, m/s. */
export const INFER_AIRBORNE_SPEED_MPS = 1;
/** Above this vertical speed (up or down) a drone of unknown state is taken to be flying, m/s. */
export const INFER_AIRBORNE_CLIMB_MPS = 0.5;

/** Whether `status` alone says the drone is on the ground. */
export function isGroundedStatus(status: DroneStatus): boolean {
  return GROUNDED_STATUSES.has(status);
}

/** What `isAirborne` reads; telemetry samples, detector drones and simulated drones all fit. */
export type AirborneInput = {
  readonly armed: boolean;
  readonly status: DroneStatus;
  readonly state_known?: boolean;
  readonly alt_m?: number;
  readonly speed_mps?: number;
  readonly climb_mps?: number;
};

/** Whether altitude or motion says a drone is flying (for drones of unknown state). */
export function inferAirborne(d: Pick<AirborneInput, "alt_m" | "speed_mps" | "climb_mps">): boolean {
  return (
    (d.alt_m !== undefined && d.alt_m > INFER_AIRBORNE_ALT_M) ||
    (d.speed_mps !== undefined && d.speed_mps > INFER_AIRBORNE_SPEED_MPS) ||
    (d.climb_mps !== undefined && Math.abs(d.climb_mps) > INFER_AIRBORNE_CLIMB_MPS)
  );
}

/** Whether the drone is in the air: armed and not in a grounded status; inferred when its state is
 * unknown (see the module comment). */
export function isAirborne(d: AirborneInput): boolean {
  if (d.state_known === false) return inferAirborne(d);
  return d.armed && !GROUNDED_STATUSES.has(d.status);
}

/** Whether the drone counts as airborne only by inference (its state is unknown). */
export function isInferredAirborne(d: AirborneInput): boolean {
  return d.state_known === false && inferAirborne(d);
}
