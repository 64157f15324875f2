/**
 * What a drone's reported state means: the one definition of "airborne" that the collision
 * detector, the fleet object (run detection only while someone flies), fleet_status's `flying`
 * count, the dashboard's live counts and the relay's simulator all use.
 *
 * The rule: a drone is airborne when it is armed and its status is not a grounded one (idle,
 * landed, charging). So taking_off, flying, returning, landing and emergency count as in the
 * air; a disarmed drone never does, whatever its status says (its motors cannot be turning).
 *
 * Pure: imports only protocol types.
 */
import type { TelemetrySample } from "../protocol";

export type DroneStatus = TelemetrySample["status"];

/** Statuses of a drone standing on the ground. */
export const GROUNDED_STATUSES: ReadonlySet<DroneStatus> = new Set<DroneStatus>(["idle", "landed", "charging"]);

/** Whether `status` alone says the drone is on the ground. */
export function isGroundedStatus(status: DroneStatus): boolean {
  return GROUNDED_STATUSES.has(status);
}

/** Whether the drone is in the air: armed and not in a grounded status. */
export function isAirborne(d: { readonly armed: boolean; readonly status: DroneStatus }): boolean {
  return d.armed && !GROUNDED_STATUSES.has(d.status);
}
