/**
 * What a ROS 2 drone is about to fly, read from its ground station's topics and sent to the edge
 * with every sample as its `intent` (edge/protocol/relay.ts `DroneIntent`), so that collision
 * avoidance predicts it along its route instead of by dead reckoning.
 *
 * Per profile (ros2.ts picks the reader by profile name; the topic is a template with `{drone}`,
 * `Ros2SourceOptions.intentTopic` (config `intent_topic`) overrides it, `false` turns it off, and a
 * drone's own name (config `drones[i].intent_topic`) wins over both):
 *
 * - default: `/{drone}/route`, **nav_msgs/msg/Path**, the remaining route, first pose = the point
 *   being flown to. Poses are ENU metres (x east, y north, z up) from the drone's take-off point
 *   (its first fix, the origin the relay also measures `alt_m` from), whatever `header.frame_id`
 *   says (it only names the route: `route_id` is `path:<frame_id>`). Dense planner paths are thinned
 *   to points ≥ 10 m apart, at most 32, keeping the last. Points the drone has already passed
 *   (behind it on the first leg, or within 10 m) are dropped as it flies, so a path published once
 *   stays usable. A new route (its end moved, or it got longer) is a new `revision`.
 * - mavros: `/{drone}/mavros/mission/waypoints`, **mavros_msgs/msg/WaypointList**, with its
 *   `current_seq` (or the item flagged `is_current`): the mission items from the current one on,
 *   while the vehicle is in its mission mode (PX4 AUTO.MISSION, ArduPilot AUTO; in any other mode
 *   it is not flying the mission, and there is no intent). Navigation items only: WAYPOINT,
 *   SPLINE_WAYPOINT, LOITER_* and TAKEOFF at their position, LAND at its position (or where the
 *   drone is) down to the ground, RETURN_TO_LAUNCH to the take-off point; DO_CHANGE_SPEED sets the
 *   speed. Items in a relative-altitude frame (GLOBAL_RELATIVE_ALT[_INT]) are used as they are;
 *   a mission with items in AMSL or terrain frames gives no intent (the relay cannot put them on
 *   the edge's altitude-above-home scale without the geoid and terrain). A changed list, or a
 *   current item that went backwards (the mission restarted), is a new `revision`. MAVROS
 *   publishes the list when it changes (and when the current item does), so after the relay
 *   starts there is no intent until it next does.
 *
 * Both topics are subscribed with the `default` QoS (reliable): routes are published reliably
 * (MAVROS's waypoint list is reliable and latched), and a best-effort subscription would lose the
 * one message a static route is sent in.
 *
 * Pure parsing (`readPath`, `readWaypointList`, `remainingRoute`) is exported for tests; the class
 * holds the latest route per drone.
 */
import { INTENT_MAX_WAYPOINTS, type DroneIntent } from "../../../edge/protocol";
import { offsetM, toLocal, type LatLon } from "../../../edge/domain/geo";
import type { Logger } from "../../log";
import type { RclNodeLike } from "./rcl";

/** What the source knows of the drone when it emits a sample (ros2.ts's `Latest` fits). */
export type IntentContext = {
  fix: { lat: number; lon: number; altitude: number } | null;
  /** Altitude of the take-off point (the source's, which the sample's `alt_m` is measured from). */
  homeAltitude: number | null;
  mode: string;
};

/** A route as read from a message: points in the drone's frame or on the globe. */
type LocalRoute = { kind: "local"; routeId: string; points: { x: number; y: number; z: number }[] };
type GlobalRoute = { kind: "global"; routeId: string; items: MissionItem[]; current: number; key: string };
type Route = LocalRoute | GlobalRoute;

/** A mission item the edge can use: where, and what kind. */
export type MissionItem =
  | { nav: "point"; lat: number; lon: number; alt_m: number }
  | { nav: "land"; lat: number | null; lon: number | null }
  | { nav: "rtl" }
  | { nav: "speed"; mps: number };

/** Reads one profile's route message. */
export interface IntentReader {
  readonly type: string;
  readonly defaultTopic: string;
  read(msg: unknown): Route | null;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Poses closer than this to the last one kept are thinned away, metres. */
const THIN_M = 10;
/** A point this close to the drone counts as reached, metres. */
const REACHED_M = 10;

/** nav_msgs/msg/Path → its points (ENU metres), thinned; null when unreadable. */
export function readPath(msg: unknown): LocalRoute | null {
  if (!isObj(msg) || !Array.isArray(msg.poses)) return null;
  const frame = isObj(msg.header) && typeof msg.header.frame_id === "string" && msg.header.frame_id ? msg.header.frame_id.slice(0, 40) : "map";
  const all: { x: number; y: number; z: number }[] = [];
  for (const p of msg.poses) {
    const pos = isObj(p) && isObj(p.pose) && isObj(p.pose.position) ? p.pose.position : null;
    const x = num(pos?.x);
    const y = num(pos?.y);
    const z = num(pos?.z);
    if (x === undefined || y === undefined || z === undefined) return null;
    all.push({ x, y, z });
  }
  const points: typeof all = [];
  for (const p of all) {
    const last = points[points.length - 1];
    if (!last || Math.hypot(p.x - last.x, p.y - last.y, p.z - last.z) >= THIN_M) points.push(p);
  }
  const end = all[all.length - 1];
  const kept = points[points.length - 1];
  if (end && kept && end !== kept) points.push(end);
  return { kind: "local", routeId: `path:${frame}`, points };
}

/** MAV_CMD values used (mavros_msgs/CommandCode). */
const CMD = { waypoint: 16, loiterUnlim: 17, loiterTurns: 18, loiterTime: 19, rtl: 20, land: 21, takeoff: 22, spline: 82, changeSpeed: 178 } as const;
/** Frames whose altitude is above home, as the edge's is (GLOBAL_RELATIVE_ALT, …_INT). */
const RELATIVE_FRAMES = new Set([3, 6]);
/** MAV_FRAME_MISSION: commands without a position (DO_CHANGE_SPEED is sent in it). */
const FRAME_MISSION = 2;

/** mavros_msgs/msg/WaypointList → the usable items and the current one; null when the list is
 * unreadable or has positions the edge cannot place (AMSL or terrain altitudes). */
export function readWaypointList(msg: unknown): GlobalRoute | null {
  if (!isObj(msg) || !Array.isArray(msg.waypoints)) return null;
  const items: MissionItem[] = [];
  /** Index in `items` of each list entry (for the current one). */
  const at: number[] = [];
  let current = num(msg.current_seq);
  const parts: string[] = [];
  for (let i = 0; i < msg.waypoints.length; i++) {
    const w: unknown = msg.waypoints[i];
    at.push(items.length);
    if (!isObj(w)) return null;
    const command = num(w.command);
    const frame = num(w.frame);
    const lat = num(w.x_lat);
    const lon = num(w.y_long);
    const alt = num(w.z_alt);
    if (w.is_current === true && current === undefined) current = i;
    parts.push(`${command}:${frame}:${lat?.toFixed(7)}:${lon?.toFixed(7)}:${alt?.toFixed(1)}`);
    if (command === CMD.changeSpeed) {
      const mps = num(w.param2);
      if (mps !== undefined && mps > 0) items.push({ nav: "speed", mps });
      continue;
    }
    if (command === CMD.rtl) {
      items.push({ nav: "rtl" });
      continue;
    }
    const positional = command === CMD.waypoint || command === CMD.spline || command === CMD.takeoff || command === CMD.land || command === CMD.loiterUnlim || command === CMD.loiterTurns || command === CMD.loiterTime;
    if (!positional) continue;
    if (command === CMD.land && (!lat || !lon)) {
      items.push({ nav: "land", lat: null, lon: null });
      continue;
    }
    if (frame === FRAME_MISSION || frame === undefined || !RELATIVE_FRAMES.has(frame)) return null;
    if (lat === undefined || lon === undefined || alt === undefined || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
    items.push(command === CMD.land ? { nav: "land", lat, lon } : { nav: "point", lat, lon, alt_m: alt });
  }
  const cur = current !== undefined && current >= 0 && current < at.length ? at[current]! : 0;
  return { kind: "global", routeId: "mission", items, current: cur, key: parts.join("|") };
}

/** Modes in which the autopilot flies its stored mission. */
const MISSION_MODES = new Set(["AUTO.MISSION", "AUTO"]);

/**
 * The route still to fly from where the drone is, on the globe (alt_m above the take-off point),
 * and its speed; null when there is none (not in mission mode, or nothing left).
 */
export function remainingRoute(route: Route, ctx: IntentContext, origin: LatLon & { altitude: number }): { waypoints: DroneIntent["waypoints"]; speed_mps?: number } | null {
  const here = ctx.fix;
  if (!here) return null;
  const altNow = Number.isFinite(here.altitude) && Number.isFinite(origin.altitude) ? here.altitude - origin.altitude : 0;
  if (route.kind === "local") {
    const pts = route.points.map((p) => ({ ...offsetM(origin, p.x, p.y), alt_m: p.z }));
    return trimReached(pts, here, altNow);
  }
  if (!MISSION_MODES.has(ctx.mode.toUpperCase())) return null;
  const out: DroneIntent["waypoints"] = [];
  let speed: number | undefined;
  for (let i = 0; i < route.items.length; i++) {
    const it = route.items[i]!;
    if (it.nav === "speed") {
      // The last speed change at or before the current item is the one being flown.
      if (i <= route.current || out.length === 0) speed = it.mps;
      continue;
    }
    if (i < route.current) continue;
    const lastAlt = out[out.length - 1]?.alt_m ?? altNow;
    if (it.nav === "point") out.push({ lat: it.lat, lon: it.lon, alt_m: it.alt_m });
    else if (it.nav === "land") {
      const p = it.lat !== null && it.lon !== null ? { lat: it.lat, lon: it.lon } : (out[out.length - 1] ?? { lat: here.lat, lon: here.lon });
      out.push({ lat: p.lat, lon: p.lon, alt_m: lastAlt }, { lat: p.lat, lon: p.lon, alt_m: 0 });
      break;
    } else {
      out.push({ lat: origin.lat, lon: origin.lon, alt_m: lastAlt }, { lat: origin.lat, lon: origin.lon, alt_m: 0 });
      break;
    }
  }
  const r = trimReached(out, here, altNow);
  return r && speed !== undefined ? { ...r, speed_mps: speed } : r;
}

/** Drop leading points the drone has reached or passed; cap the length; null when none remain. */
function trimReached(pts: DroneIntent["waypoints"], here: LatLon, altNow: number): { waypoints: DroneIntent["waypoints"] } | null {
  let i = 0;
  while (i < pts.length - 1) {
    const a = toLocal(here, pts[i]!);
    const b = toLocal(here, pts[i + 1]!);
    const reached = Math.hypot(a.x_m, a.y_m) < REACHED_M && Math.abs(pts[i]!.alt_m - altNow) < REACHED_M;
    // Behind the drone on the first leg: the vector to it points away from the next point.
    const passed = (b.x_m - a.x_m) * -a.x_m + (b.y_m - a.y_m) * -a.y_m > 0;
    if (!reached && !passed) break;
    i++;
  }
  const left = pts.slice(i, i + INTENT_MAX_WAYPOINTS);
  return left.length ? { waypoints: left.map((w) => ({ lat: round7(w.lat), lon: round7(w.lon), alt_m: Math.round(w.alt_m * 100) / 100 })) } : null;
}

const round7 = (v: number) => Math.round(v * 1e7) / 1e7;

export const PATH_INTENT: IntentReader = { type: "nav_msgs/msg/Path", defaultTopic: "/{drone}/route", read: readPath };
export const MAVROS_INTENT: IntentReader = { type: "mavros_msgs/msg/WaypointList", defaultTopic: "/{drone}/mavros/mission/waypoints", read: readWaypointList };

/** The reader of a profile (by name). */
export function intentReaderFor(profile: string): IntentReader {
  return profile === "mavros" ? MAVROS_INTENT : PATH_INTENT;
}

/** rclnodejs QoS profile name routes are subscribed with (see the module comment). */
export const INTENT_QOS = "qos_profile_default";

type PerDrone = { route: Route | null; revision: number; key: string | null; current: number; origin: (LatLon & { altitude: number }) | null };

/** The latest route of every drone, and its revision. */
export class RosIntents {
  private readonly drones = new Map<string, PerDrone>();
  private disabled = false;
  /** Messages received, and unreadable ones (for metrics and logs). */
  received = 0;
  unreadable = 0;

  constructor(
    readonly reader: IntentReader,
    private readonly opts: { topic?: string; log: Logger },
  ) {}

  /** The route topic of a drone. */
  topicFor(droneId: string): string {
    return (this.opts.topic ?? this.reader.defaultTopic).replaceAll("{drone}", droneId);
  }

  /** Subscribe to one drone's route. A missing message type disables intents (logged once):
   * the drones are then predicted by the edge's own plans and dead reckoning. */
  subscribe(node: RclNodeLike, droneId: string, topic = this.topicFor(droneId)): void {
    if (this.disabled) return;
    const st = this.state(droneId);
    try {
      node.createSubscription(this.reader.type, topic, { qos: INTENT_QOS }, (msg: unknown) => {
        this.received++;
        const route = this.reader.read(msg);
        if (!route) {
          this.unreadable++;
          st.route = null;
          return;
        }
        this.update(st, route);
      });
    } catch (err) {
      this.disabled = true;
      this.opts.log.warn("route topics disabled: their message type cannot be subscribed; the edge predicts these drones without their routes", {
        type: this.reader.type,
        topic,
        error: err,
      });
    }
  }

  /** The intent to send with a drone's sample now, if its route is known. */
  intentFor(droneId: string, ctx: IntentContext): DroneIntent | undefined {
    const st = this.state(droneId);
    if (!ctx.fix) return undefined;
    // The take-off point: where the drone's first emitted sample was, at the source's take-off
    // altitude (see the module comment).
    st.origin ??= { lat: ctx.fix.lat, lon: ctx.fix.lon, altitude: ctx.homeAltitude ?? ctx.fix.altitude };
    if (!st.route) return undefined;
    const r = remainingRoute(st.route, ctx, { ...st.origin, altitude: ctx.homeAltitude ?? st.origin.altitude });
    if (!r) return undefined;
    return { route_id: st.route.routeId, revision: st.revision, waypoints: r.waypoints, ...(r.speed_mps !== undefined ? { speed_mps: r.speed_mps } : {}) };
  }

  private state(id: string): PerDrone {
    let st = this.drones.get(id);
    if (!st) this.drones.set(id, (st = { route: null, revision: 0, key: null, current: 0, origin: null }));
    return st;
  }

  /** A new message: a new revision when the route was replaced or restarted (not when it progressed). */
  private update(st: PerDrone, route: Route): void {
    const prev = st.route;
    let fresh = prev === null || prev.kind !== route.kind || prev.routeId !== route.routeId;
    if (!fresh && route.kind === "global" && prev?.kind === "global") fresh = route.key !== prev.key || route.current < st.current;
    if (!fresh && route.kind === "local" && prev?.kind === "local") {
      const a = prev.points[prev.points.length - 1];
      const b = route.points[route.points.length - 1];
      fresh = !a || !b || Math.hypot(a.x - b.x, a.y - b.y, a.z - b.z) > 1 || route.points.length > prev.points.length + 1;
    }
    if (fresh && prev !== null) st.revision++;
    st.current = route.kind === "global" ? route.current : 0;
    st.route = route;
  }
}
