/**
 * The `mavros` profile: a ground station running MAVROS (ROS 2, mavros 2.x) per vehicle, each in
 * its own namespace (`ros2 launch mavros px4.launch namespace:=uav1/mavros`, or apm.launch), so
 * that vehicle `uav1`'s topics are `/uav1/mavros/...`. Nothing has to be written on the ground
 * station's side: the relay reads MAVROS's standard topics and calls its standard services.
 *
 * Telemetry (subscribed, like every profile's, with the sensor-data QoS, best effort: MAVROS
 * publishes its sensor topics that way, and a reliable subscription would match none of them):
 *   /{drone}/mavros/global_position/global         sensor_msgs/msg/NavSatFix    → lat, lon, alt_m
 *   /{drone}/mavros/battery                        sensor_msgs/msg/BatteryState → battery_pct
 *   /{drone}/mavros/local_position/velocity_local  geometry_msgs/msg/TwistStamped (ENU)
 *                                                   → speed_mps, climb_mps, course (= heading)
 *   /{drone}/mavros/state                          mavros_msgs/msg/State        → armed, mode, status
 * `alt_m` is the altitude above the first fix (the take-off point), as with the default profile.
 *
 * Commands (services, all in mavros_msgs):
 *   emergency_land  /{drone}/mavros/cmd/land       mavros_msgs/srv/CommandTOL: MAV_CMD_NAV_LAND
 *                   at the current position (latitude/longitude/yaw NaN: "current", per MAVLink);
 *                   PX4 and ArduPilot switch to their LAND mode. `success` false → failed, with
 *                   the MAV_RESULT.
 *   modify_waypoint /{drone}/mavros/mission/push   mavros_msgs/srv/WaypointPush: a one-item
 *                   mission to the new point (NAV_WAYPOINT, relative altitude), made current.
 *   assign_mission  /{drone}/mavros/mission/push   WaypointPush of the whole route, first item
 *                   current.
 *   hold            /{drone}/mavros/set_mode       mavros_msgs/srv/SetMode to the hold mode
 *                   (PX4 AUTO.LOITER, ArduPilot LOITER; `mavros.hold_mode` overrides). Its
 *                   duration is not carried: leave the mode yourself (or send a new mission).
 *
 * Why mission/push rather than setpoint_position/global for waypoints: it is a service with an
 * answer (the edge gets a real acked/failed), the route is stored on the autopilot (it survives
 * a lost radio link), and it needs no continuous setpoint stream (PX4 leaves OFFBOARD when
 * setpoints stop arriving at ≥ 2 Hz; ArduPilot needs GUIDED). What it does need: the vehicle
 * flies a pushed mission only in its mission mode (PX4 AUTO.MISSION, ArduPilot AUTO), armed and
 * airborne or with a take-off item; the relay never arms or changes modes except for `hold`.
 * ArduPilot treats mission item 0 as home, so for `autopilot: ardupilot` a placeholder home item
 * is sent first (the autopilot overwrites it).
 *
 * What has to be installed on the relay host: mavros_msgs (sudo apt install
 * ros-$ROS_DISTRO-mavros-msgs; it comes with ros-$ROS_DISTRO-mavros), sensor_msgs and
 * geometry_msgs (part of every ROS 2 install), and rclnodejs's generated JavaScript for them
 * (`npx generate-ros-messages` in the repository's root after installing, with ROS 2 sourced).
 * Missing types are named at start, one hint per package (and by `npm run relay -- doctor`);
 * commands that need them fail with that explanation.
 */
import type { RelayCommand, Waypoint } from "../../../../edge/protocol";
import { DRONE_STATUSES } from "../../../../edge/protocol";
import { defaultInstallHint, REGENERATE_STEP, type RosProfile, type ServiceKey, type StateUpdate } from "../ros2";
import type { CommandOutcome, DroneStatus } from "../../source";

export type Autopilot = "px4" | "ardupilot";

export interface MavrosOptions {
  autopilot?: Autopilot;
  /** custom_mode for `hold`; default AUTO.LOITER (PX4) or LOITER (ArduPilot). */
  holdMode?: string;
}

export const MAVROS_TYPES = {
  state: "mavros_msgs/msg/State",
  waypoint: "mavros_msgs/msg/Waypoint",
  commandTol: "mavros_msgs/srv/CommandTOL",
  waypointPush: "mavros_msgs/srv/WaypointPush",
  setMode: "mavros_msgs/srv/SetMode",
} as const;

/** mavros_msgs/Waypoint.FRAME_GLOBAL_REL_ALT: altitude above home, as our waypoints' alt_m. */
export const FRAME_GLOBAL_REL_ALT = 3;
/** mavros_msgs/CommandCode.NAV_WAYPOINT (MAV_CMD_NAV_WAYPOINT). */
export const NAV_WAYPOINT = 16;

/** MAV_STATE values that mean the vehicle is in trouble. */
const MAV_STATE_CRITICAL = 5;
const MAV_STATE_EMERGENCY = 6;
const MAV_STATE_FLIGHT_TERMINATION = 8;

const MAV_RESULT = ["ACCEPTED", "TEMPORARILY_REJECTED", "DENIED", "UNSUPPORTED", "FAILED", "IN_PROGRESS", "CANCELLED"];

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;

/**
 * mavros_msgs/State → armed, mode and a status. MAVROS has no flight phase, so it is inferred:
 * an emergency MAV_STATE → emergency; a LAND mode → landing (landed once disarmed); RTL/RETURN →
 * returning; TAKEOFF → taking_off; otherwise armed → flying, disarmed → idle.
 */
export function readMavrosState(msg: unknown): StateUpdate | null {
  if (!isObj(msg) || typeof msg.armed !== "boolean" || typeof msg.mode !== "string") return null;
  const armed = msg.armed;
  const connected = msg.connected !== false;
  const mode = connected ? msg.mode.slice(0, 32) || "UNKNOWN" : "FCU_DISCONNECTED";
  const sys = typeof msg.system_status === "number" ? msg.system_status : -1;
  const m = msg.mode.toUpperCase();
  let status: DroneStatus;
  if (sys === MAV_STATE_CRITICAL || sys === MAV_STATE_EMERGENCY || sys === MAV_STATE_FLIGHT_TERMINATION) status = "emergency";
  else if (/LAND/.test(m)) status = armed ? "landing" : "landed";
  else if (armed && /RTL|RETURN/.test(m)) status = "returning";
  else if (armed && /TAKEOFF/.test(m)) status = "taking_off";
  else status = armed ? "flying" : "idle";
  if (!(DRONE_STATUSES as readonly string[]).includes(status)) status = "idle";
  return { armed, mode, status };
}

function waypointItem(w: Waypoint, current: boolean): Record<string, unknown> {
  return {
    frame: FRAME_GLOBAL_REL_ALT,
    command: NAV_WAYPOINT,
    is_current: current,
    autocontinue: true,
    param1: 0, // hold time, s
    param2: 0, // acceptance radius: the autopilot's default
    param3: 0, // pass-through
    param4: Number.NaN, // yaw: keep the autopilot's heading behaviour
    x_lat: w.lat,
    y_long: w.lon,
    z_alt: w.alt_m,
  };
}

/** ArduPilot overwrites item 0 with home; this placeholder takes that slot. */
function homePlaceholder(): Record<string, unknown> {
  return { ...waypointItem({ lat: 0, lon: 0, alt_m: 0 }, false), frame: 0 };
}

export function createMavrosProfile(opts: MavrosOptions = {}): RosProfile {
  const autopilot = opts.autopilot ?? "px4";
  const holdMode = opts.holdMode ?? (autopilot === "px4" ? "AUTO.LOITER" : "LOITER");
  const push = (points: Waypoint[]): Record<string, unknown> => {
    const items = points.map((w, i) => waypointItem(w, i === 0));
    return { start_index: 0, waypoints: autopilot === "ardupilot" ? [homePlaceholder(), ...items] : items };
  };
  return {
    name: "mavros",
    topicTypes: {
      fix: "sensor_msgs/msg/NavSatFix",
      battery: "sensor_msgs/msg/BatteryState",
      velocity: "geometry_msgs/msg/TwistStamped",
      state: MAVROS_TYPES.state,
    },
    defaultTopics: {
      fix: "/{drone}/mavros/global_position/global",
      battery: "/{drone}/mavros/battery",
      velocity: "/{drone}/mavros/local_position/velocity_local",
      state: "/{drone}/mavros/state",
    },
    serviceTypes: {
      modify_waypoint: MAVROS_TYPES.waypointPush,
      assign_mission: MAVROS_TYPES.waypointPush,
      emergency_land: MAVROS_TYPES.commandTol,
      hold: MAVROS_TYPES.setMode,
    },
    defaultServices: {
      modify_waypoint: "/{drone}/mavros/mission/push",
      assign_mission: "/{drone}/mavros/mission/push",
      emergency_land: "/{drone}/mavros/cmd/land",
      hold: "/{drone}/mavros/set_mode",
    },
    extraTypes: [MAVROS_TYPES.waypoint],
    readState: readMavrosState,
    request(c: RelayCommand): { key: ServiceKey; request: Record<string, unknown> } {
      switch (c.command) {
        case "emergency_land":
          // NaN position and yaw: land where it is (MAVLink's "current" convention).
          return { key: "emergency_land", request: { min_pitch: 0, yaw: Number.NaN, latitude: Number.NaN, longitude: Number.NaN, altitude: 0 } };
        case "modify_waypoint":
          return { key: "modify_waypoint", request: push([c.new_waypoint]) };
        case "assign_mission":
          return { key: "assign_mission", request: push(c.waypoints) };
        case "hold":
          return { key: "hold", request: { base_mode: 0, custom_mode: holdMode } };
        default: {
          const never: never = c;
          throw new Error(`unknown command ${JSON.stringify((never as { command?: unknown }).command ?? null)}`);
        }
      }
    },
    readResponse(service: string, key: ServiceKey, response: unknown): CommandOutcome {
      if (!isObj(response)) return { ok: false, message: `service ${service} returned a malformed response` };
      switch (key) {
        case "emergency_land": {
          const result = typeof response.result === "number" ? response.result : -1;
          const name = `MAV_RESULT ${result}${MAV_RESULT[result] ? ` ${MAV_RESULT[result]}` : ""}`;
          return response.success === true ? { ok: true, message: `land command accepted (${name})` } : { ok: false, message: `land command refused by the autopilot (${name})` };
        }
        case "modify_waypoint":
        case "assign_mission": {
          const n = typeof response.wp_transfered === "number" ? response.wp_transfered : 0;
          return response.success === true
            ? { ok: true, message: `mission of ${n} item(s) uploaded; flown in the autopilot's mission mode` }
            : { ok: false, message: `mission upload failed (${n} item(s) transferred)` };
        }
        case "hold":
          return response.mode_sent === true ? { ok: true, message: `mode ${holdMode} sent` } : { ok: false, message: `the autopilot did not take mode ${holdMode}` };
        default: {
          const never: never = key;
          return { ok: false, message: `unexpected service ${String(never)}` };
        }
      }
    },
    installHint(type: string): string {
      if (type.startsWith("mavros_msgs/")) {
        return `install MAVROS's messages (sudo apt install ros-$ROS_DISTRO-mavros-msgs), source ROS 2 again, then ${REGENERATE_STEP}`;
      }
      return defaultInstallHint(type);
    },
  };
}
