/**
 * Ground-station profiles by name: `default` (the project's own topics and dronefleet_interfaces
 * services, see ros2.ts) and `mavros` (MAVROS's standard topics and services, see mavros.ts).
 */
import { DEFAULT_PROFILE, type ProfileName, type RosProfile } from "../ros2";
import { createMavrosProfile, type MavrosOptions } from "./mavros";

export const PROFILE_NAMES = ["default", "mavros"] as const satisfies readonly ProfileName[];

export function getProfile(name: ProfileName, mavros: MavrosOptions = {}): RosProfile {
  switch (name) {
    case "default":
      return DEFAULT_PROFILE;
    case "mavros":
      return createMavrosProfile(mavros);
    default: {
      const never: never = name;
      throw new Error(`unknown profile ${String(never)}`);
    }
  }
}
