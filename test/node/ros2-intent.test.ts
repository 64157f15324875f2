/**
 * ROS 2 routes as the drones' intent (relay/sources/ros2/intent.ts), against the rclnodejs double
 * (relay-rcl-double.ts): the default profile's nav_msgs/msg/Path of the remaining route, MAVROS's
 * mission/waypoints with its current item, revisions when a route is replaced or restarted, and
 * the sample of a drone without a state topic (state unknown: the edge infers airborne).
 */
import { afterEach, describe, expect, it } from "vitest";
import { TelemetryUpdate } from "../../edge/protocol";
import { toLocal } from "../../edge/domain/geo";
import { getProfile } from "../../relay/sources/ros2/profiles";
import { readPath, readWaypointList } from "../../relay/sources/ros2/intent";
import { Ros2Source } from "../../relay/sources/ros2/ros2";
import type { SourceSample } from "../../relay/sources/source";
import { FakeRcl, mavrosState, navSatFix, stateMsg } from "./relay-rcl-double";

const sources: Ros2Source[] = [];
afterEach(async () => {
  await Promise.all(sources.map((s) => s.stop()));
  sources.length = 0;
});

async function started(opts: Partial<ConstructorParameters<typeof Ros2Source>[0]> = {}) {
  const rcl = new FakeRcl();
  const got: SourceSample[] = [];
  const src = new Ros2Source({ droneIds: ["uav1"], rcl, host: rcl.host, now: () => 1_700_000_000_000, ...opts });
  sources.push(src);
  await src.start((s) => got.push(s));
  return { rcl, got };
}

const HOME = { lat: 47.3977, lon: 8.5456 };
const pose = (x: number, y: number, z: number) => ({ header: { frame_id: "map" }, pose: { position: { x, y, z }, orientation: { x: 0, y: 0, z: 0, w: 1 } } });
const path = (pts: [number, number, number][], frame = "map") => ({ header: { frame_id: frame }, poses: pts.map(([x, y, z]) => pose(x, y, z)) });
/** Local metres of a waypoint, from home. */
const local = (w: { lat: number; lon: number }) => {
  const l = toLocal(HOME, w);
  return [Math.round(l.x_m), Math.round(l.y_m)];
};

describe("default profile: nav_msgs/msg/Path on /{drone}/route", () => {
  it("sends the remaining route with every sample, in the frame of the take-off point", async () => {
    const { rcl, got } = await started();
    rcl.publish("/uav1/state", stateMsg({ armed: true, mode: "AUTO.MISSION", status: "flying" }));
    rcl.publish("/uav1/fix", navSatFix(HOME.lat, HOME.lon, 400));
    expect(got[0]?.intent).toBeUndefined();
    // A dense planner path: thinned to ≥ 10 m steps, the end kept.
    const dense: [number, number, number][] = Array.from({ length: 41 }, (_, i) => [i * 5, 0, 50]);
    rcl.publish("/uav1/route", path(dense));
    rcl.publish("/uav1/fix", navSatFix(HOME.lat, HOME.lon, 450));
    const s = got.at(-1)!;
    expect(TelemetryUpdate.safeParse({ ...s, seq: 1 }).success).toBe(true);
    expect(s.intent).toMatchObject({ route_id: "path:map", revision: 0 });
    const wps = s.intent!.waypoints;
    // The drone is at the start: the first point (within 10 m) counts as reached.
    const [x0] = local(wps[0]!);
    expect(x0).toBeGreaterThanOrEqual(10);
    expect(x0).toBeLessThanOrEqual(20);
    expect(local(wps.at(-1)!)).toEqual([200, 0]);
    expect(wps.map((w) => local(w)[0]! % 10)).toEqual(wps.map(() => 0));
    expect(wps.every((w) => w.alt_m === 50)).toBe(true);
  });

  it("drops what the drone has passed, and counts a replaced route as a new revision", async () => {
    const { rcl, got } = await started();
    rcl.publish("/uav1/fix", navSatFix(HOME.lat, HOME.lon, 400));
    rcl.publish("/uav1/route", path([[0, 100, 50], [0, 200, 50], [100, 200, 50]]));
    // 150 m north: past the first point.
    const north = 150 / 111_320;
    rcl.publish("/uav1/fix", navSatFix(HOME.lat + north, HOME.lon, 450));
    expect(got.at(-1)!.intent!.waypoints.map(local)).toEqual([[0, 200], [100, 200]]);
    // Progress (the same end, fewer points) keeps the revision; a new end is a new route.
    rcl.publish("/uav1/route", path([[0, 200, 50], [100, 200, 50]]));
    rcl.publish("/uav1/fix", navSatFix(HOME.lat + north, HOME.lon, 450));
    expect(got.at(-1)!.intent!.revision).toBe(0);
    rcl.publish("/uav1/route", path([[0, 0, 50], [-100, 0, 50]]));
    rcl.publish("/uav1/fix", navSatFix(HOME.lat + north, HOME.lon, 450));
    expect(got.at(-1)!.intent).toMatchObject({ revision: 1 });
  });

  it("a drone without a state topic is sent as state unknown", async () => {
    const { rcl, got } = await started();
    rcl.publish("/uav1/fix", navSatFix(HOME.lat, HOME.lon, 400));
    expect(got.at(-1)).toMatchObject({ armed: false, status: "idle", state_known: false });
    rcl.publish("/uav1/state", stateMsg({ armed: true, status: "flying" }));
    rcl.publish("/uav1/fix", navSatFix(HOME.lat, HOME.lon, 400));
    expect(got.at(-1)!.state_known).toBeUndefined();
  });

  it("intentTopic overrides the topic; false turns routes off", async () => {
    const a = await started({ intentTopic: "/fleet/{drone}/plan" });
    expect(a.rcl.nodes[0]!.subscriptions.some((s) => s.topic === "/fleet/uav1/plan")).toBe(true);
    const b = await started({ intentTopic: false });
    expect(b.rcl.nodes[0]!.subscriptions.some((s) => s.typeClass === "nav_msgs/msg/Path")).toBe(false);
  });

  it("a drone's own route topic wins over the template, and false turns off that drone's alone", async () => {
    const perDrone = { uav2: { intentTopic: "/planner/uav2/path" }, uav3: { intentTopic: false as const } };
    const { rcl, got } = await started({ droneIds: ["uav1", "uav2", "uav3"], intentTopic: "/fleet/{drone}/plan", perDrone });
    const routes = rcl.nodes[0]!.subscriptions.filter((s) => s.typeClass === "nav_msgs/msg/Path").map((s) => s.topic);
    expect(routes).toEqual(["/fleet/uav1/plan", "/planner/uav2/path"]);
    // The drone's own topic is the one its route is read from.
    rcl.publish("/uav2/fix", navSatFix(HOME.lat, HOME.lon, 400));
    rcl.publish("/planner/uav2/path", path([[0, 0, 50], [0, 200, 50]]));
    rcl.publish("/uav2/fix", navSatFix(HOME.lat, HOME.lon, 400));
    expect(got.at(-1)).toMatchObject({ drone_id: "uav2", intent: { route_id: "path:map" } });
    // Even with the template off, a drone's own topic is subscribed.
    const b = await started({ droneIds: ["uav1", "uav2"], intentTopic: false, perDrone: { uav2: { intentTopic: "/planner/uav2/path" } } });
    expect(b.rcl.nodes[0]!.subscriptions.filter((s) => s.typeClass === "nav_msgs/msg/Path").map((s) => s.topic)).toEqual(["/planner/uav2/path"]);
  });

  it("reads paths strictly: a pose without a position makes the message unreadable", () => {
    expect(readPath({ poses: [{ pose: { position: { x: 1, y: 2 } } }] })).toBeNull();
    expect(readPath({ header: { frame_id: "odom" }, poses: [] })).toEqual({ kind: "local", routeId: "path:odom", points: [] });
  });
});

describe("mavros profile: mission/waypoints and the current item", () => {
  const item = (command: number, lat: number, lon: number, alt: number, extra: Record<string, unknown> = {}) => ({
    frame: 3,
    command,
    is_current: false,
    autocontinue: true,
    param1: 0,
    param2: 0,
    param3: 0,
    param4: 0,
    x_lat: lat,
    y_long: lon,
    z_alt: alt,
    ...extra,
  });
  const d = 0.001;
  const mission = (current: number) => ({
    current_seq: current,
    waypoints: [
      item(22, HOME.lat, HOME.lon, 40),
      item(178, 0, 0, 0, { frame: 2, param2: 7 }),
      item(16, HOME.lat + d, HOME.lon, 40),
      item(16, HOME.lat + d, HOME.lon + d, 60),
      item(20, 0, 0, 0, { frame: 2 }),
    ],
  });

  async function mavros() {
    const rcl = new FakeRcl();
    const got: SourceSample[] = [];
    const src = new Ros2Source({ droneIds: ["uav1"], rcl, host: rcl.host, profile: getProfile("mavros"), now: () => 1_700_000_000_000 });
    sources.push(src);
    await src.start((s) => got.push(s));
    const fix = () => rcl.publish("/uav1/mavros/global_position/global", navSatFix(HOME.lat, HOME.lon, 500));
    return { rcl, got, fix };
  }

  it("flies the mission from the current item, at its speed, then returns to the take-off point", async () => {
    const { rcl, got, fix } = await mavros();
    rcl.publish("/uav1/mavros/state", mavrosState({ armed: true, mode: "AUTO.MISSION" }));
    rcl.publish("/uav1/mavros/mission/waypoints", mission(2));
    fix();
    const it = got.at(-1)!.intent!;
    expect(it).toMatchObject({ route_id: "mission", revision: 0, speed_mps: 7 });
    expect(it.waypoints.map((w) => w.alt_m)).toEqual([40, 60, 60, 0]);
    expect(it.waypoints.at(-1)).toMatchObject({ lat: HOME.lat, lon: HOME.lon });
  });

  it("no intent outside the mission mode; a restarted mission is a new revision", async () => {
    const { rcl, got, fix } = await mavros();
    rcl.publish("/uav1/mavros/state", mavrosState({ armed: true, mode: "AUTO.LOITER" }));
    rcl.publish("/uav1/mavros/mission/waypoints", mission(3));
    fix();
    expect(got.at(-1)!.intent).toBeUndefined();
    rcl.publish("/uav1/mavros/state", mavrosState({ armed: true, mode: "AUTO.MISSION" }));
    fix();
    expect(got.at(-1)!.intent!.revision).toBe(0);
    // Reloaded from the start: the current item went back.
    rcl.publish("/uav1/mavros/mission/waypoints", mission(0));
    fix();
    expect(got.at(-1)!.intent!.revision).toBe(1);
  });

  it("a mission with AMSL altitudes gives no intent (they cannot be put above home)", () => {
    expect(readWaypointList({ current_seq: 0, waypoints: [item(16, HOME.lat, HOME.lon, 480, { frame: 0 })] })).toBeNull();
    expect(readWaypointList({ waypoints: "nope" })).toBeNull();
  });
});
