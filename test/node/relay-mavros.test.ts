/**
 * The mavros profile and ROS interface checks, against the rclnodejs double: MAVROS's topics per
 * vehicle namespace with the sensor-data QoS, mavros_msgs/State → status, commands onto
 * mavros/cmd/land, mavros/mission/push and mavros/set_mode with the .srv fields, and missing
 * interface types named instead of crashing.
 */
import { afterEach, describe, expect, it } from "vitest";
import { TelemetrySample, type RelayCommand } from "../../edge/protocol";
import { createLogger } from "../../relay/log";
import { getProfile } from "../../relay/sources/ros2/profiles/index";
import { createMavrosProfile, readMavrosState } from "../../relay/sources/ros2/profiles/mavros";
import { Ros2Source } from "../../relay/sources/ros2/ros2";
import type { SourceSample } from "../../relay/sources/source";
import { ALL_TYPES, batteryState, FakeRcl, mavrosState, navSatFix, twistStamped } from "./relay-rcl-double";

const sources: Ros2Source[] = [];
afterEach(async () => {
  await Promise.all(sources.map((s) => s.stop()));
  sources.length = 0;
});

async function mavros(opts: Partial<ConstructorParameters<typeof Ros2Source>[0]> = {}, installed?: readonly string[]) {
  const rcl = new FakeRcl(installed ? { installed } : {});
  const got: SourceSample[] = [];
  const lines: string[] = [];
  const src = new Ros2Source({
    droneIds: ["uav1", "uav2"],
    rcl,
    host: rcl.host,
    profile: getProfile("mavros"),
    now: () => 1_700_000_000_000,
    serviceWaitMs: 50,
    serviceTimeoutMs: 300,
    log: createLogger("warn", (l) => lines.push(l)),
    ...opts,
  });
  sources.push(src);
  await src.start((s) => got.push(s));
  return { rcl, src, got, lines };
}

let n = 0;
const cmd = (body: Record<string, unknown> & { command: string }, drone = "uav1"): RelayCommand =>
  ({ type: "command", command_id: `mavros-cmd-${++n}`, drone_id: drone, timeout_ms: 4000, ...body }) as RelayCommand;
const never = new AbortController().signal;

describe("mavros profile: telemetry", () => {
  it("subscribes to MAVROS's topics per vehicle namespace, best effort (sensor-data QoS)", async () => {
    const { rcl } = await mavros();
    const subs = (rcl.nodes[0]?.subscriptions ?? []).filter((s) => s.topic.startsWith("/uav1/"));
    expect(subs.map((s) => [s.topic, s.typeClass, s.qos])).toEqual([
      ["/uav1/mavros/global_position/global", "sensor_msgs/msg/NavSatFix", "qos_profile_sensor_data"],
      ["/uav1/mavros/battery", "sensor_msgs/msg/BatteryState", "qos_profile_sensor_data"],
      ["/uav1/mavros/local_position/velocity_local", "geometry_msgs/msg/TwistStamped", "qos_profile_sensor_data"],
      ["/uav1/mavros/state", "mavros_msgs/msg/State", "qos_profile_sensor_data"],
      // The mission (intent.ts), reliable as MAVROS publishes it.
      ["/uav1/mavros/mission/waypoints", "mavros_msgs/msg/WaypointList", "qos_profile_default"],
    ]);
  });

  it("maps fix, battery, ENU velocity and mavros_msgs/State into one valid sample", async () => {
    const { rcl, got, src } = await mavros();
    rcl.publish("/uav1/mavros/state", mavrosState({ armed: true, mode: "AUTO.MISSION" }));
    rcl.publish("/uav1/mavros/battery", batteryState(0.62));
    rcl.publish("/uav1/mavros/local_position/velocity_local", twistStamped(0, 6, 1)); // north 6 m/s
    rcl.publish("/uav1/mavros/global_position/global", navSatFix(47.3977, 8.5456, 488));
    rcl.publish("/uav1/mavros/global_position/global", navSatFix(47.398, 8.5456, 520));
    const s = got.at(-1);
    expect(s).toMatchObject({ drone_id: "uav1", lat: 47.398, alt_m: 32, armed: true, mode: "AUTO.MISSION", status: "flying", speed_mps: 6, climb_mps: 1 });
    expect(s?.battery_pct).toBeCloseTo(62, 6);
    expect(s?.heading_deg).toBeCloseTo(0, 6);
    expect(TelemetrySample.safeParse({ ...s, seq: 1 }).success).toBe(true);
    expect(src.rosMessageCounts()).toEqual({ fix: 2, battery: 1, velocity: 1, state: 1 });
  });

  it("treats MAVROS's -1 % battery as unknown, not empty", async () => {
    const { rcl, got } = await mavros();
    rcl.publish("/uav2/mavros/battery", batteryState(0.5));
    rcl.publish("/uav2/mavros/battery", batteryState(-0.01));
    rcl.publish("/uav2/mavros/global_position/global", navSatFix(1, 2, 3));
    expect(got[0]?.battery_pct).toBe(50);
  });

  it("infers the status from arming, mode and MAV_STATE", () => {
    expect(readMavrosState(mavrosState({ armed: false, mode: "AUTO.LOITER" }))).toEqual({ armed: false, mode: "AUTO.LOITER", status: "idle" });
    expect(readMavrosState(mavrosState({ armed: true, mode: "AUTO.LAND" }))?.status).toBe("landing");
    expect(readMavrosState(mavrosState({ armed: false, mode: "LAND" }))?.status).toBe("landed");
    expect(readMavrosState(mavrosState({ armed: true, mode: "AUTO.RTL" }))?.status).toBe("returning");
    expect(readMavrosState(mavrosState({ armed: true, mode: "RTL" }))?.status).toBe("returning");
    expect(readMavrosState(mavrosState({ armed: true, mode: "AUTO.TAKEOFF" }))?.status).toBe("taking_off");
    expect(readMavrosState(mavrosState({ armed: true, mode: "GUIDED", system_status: 6 }))?.status).toBe("emergency");
    expect(readMavrosState(mavrosState({ armed: false, mode: "STABILIZE", connected: false }))?.mode).toBe("FCU_DISCONNECTED");
    expect(readMavrosState({ data: "{}" })).toBeNull();
  });
});

describe("mavros profile: commands", () => {
  it("emergency_land → mavros/cmd/land (CommandTOL, land here); MAV_RESULT reported", async () => {
    const { rcl, src } = await mavros();
    const land = rcl.serve("/uav1/mavros/cmd/land", "mavros_msgs/srv/CommandTOL", () => ({ success: true, result: 0 }));
    expect(await src.execute(cmd({ command: "emergency_land", reason: "intruder" }), never)).toEqual({ ok: true, message: "land command accepted (MAV_RESULT 0 ACCEPTED)" });
    const req = land.requests[0] ?? {};
    expect(req).toMatchObject({ min_pitch: 0, altitude: 0 });
    expect([req.yaw, req.latitude, req.longitude].every((v) => Number.isNaN(v))).toBe(true);
    rcl.serve("/uav2/mavros/cmd/land", "mavros_msgs/srv/CommandTOL", () => ({ success: false, result: 2 }));
    expect(await src.execute(cmd({ command: "emergency_land" }, "uav2"), never)).toEqual({ ok: false, message: "land command refused by the autopilot (MAV_RESULT 2 DENIED)" });
  });

  it("modify_waypoint and assign_mission → mavros/mission/push with Waypoint items, first one current", async () => {
    const { rcl, src } = await mavros();
    const push = rcl.serve("/uav1/mavros/mission/push", "mavros_msgs/srv/WaypointPush", (r) => ({ success: true, wp_transfered: (r.waypoints as unknown[]).length }));
    const r1 = await src.execute(cmd({ command: "modify_waypoint", new_waypoint: { lat: 47.4, lon: 8.55, alt_m: 42 }, modification_reason: "crane" }), never);
    expect(r1).toEqual({ ok: true, message: "mission of 1 item(s) uploaded; flown in the autopilot's mission mode" });
    expect(push.requests[0]).toMatchObject({
      start_index: 0,
      waypoints: [{ frame: 3, command: 16, is_current: true, autocontinue: true, x_lat: 47.4, y_long: 8.55, z_alt: 42 }],
    });
    const waypoints = [
      { lat: 1, lon: 2, alt_m: 30 },
      { lat: 1.1, lon: 2.1, alt_m: 35 },
      { lat: 1.2, lon: 2.2, alt_m: 40 },
    ];
    expect(await src.execute(cmd({ command: "assign_mission", mission_id: "m-1", waypoints, priority: "high" }), never)).toMatchObject({ ok: true });
    const items = push.requests[1]?.waypoints as Record<string, unknown>[];
    expect(items.map((w) => [w.is_current, w.x_lat, w.z_alt])).toEqual([
      [true, 1, 30],
      [false, 1.1, 35],
      [false, 1.2, 40],
    ]);
    // One client per service name, shared by both commands.
    expect(rcl.nodes[0]?.clients.map((c) => [c.serviceName, c.typeClass])).toEqual([["/uav1/mavros/mission/push", "mavros_msgs/srv/WaypointPush"]]);
    rcl.serve("/uav2/mavros/mission/push", "mavros_msgs/srv/WaypointPush", () => ({ success: false, wp_transfered: 0 }));
    expect(await src.execute(cmd({ command: "assign_mission", mission_id: "m-2", waypoints, priority: "normal" }, "uav2"), never)).toEqual({
      ok: false,
      message: "mission upload failed (0 item(s) transferred)",
    });
  });

  it("ArduPilot: a placeholder home item goes first; hold → set_mode LOITER", async () => {
    const { rcl, src } = await mavros({ profile: createMavrosProfile({ autopilot: "ardupilot" }) });
    const push = rcl.serve("/uav1/mavros/mission/push", "mavros_msgs/srv/WaypointPush", () => ({ success: true, wp_transfered: 2 }));
    const mode = rcl.serve("/uav1/mavros/set_mode", "mavros_msgs/srv/SetMode", () => ({ mode_sent: true }));
    await src.execute(cmd({ command: "modify_waypoint", new_waypoint: { lat: 5, lon: 6, alt_m: 20 }, modification_reason: "" }), never);
    const items = push.requests[0]?.waypoints as Record<string, unknown>[];
    expect(items).toHaveLength(2);
    expect(items[1]).toMatchObject({ x_lat: 5, is_current: true });
    expect(items[0]).toMatchObject({ is_current: false });
    expect(await src.execute(cmd({ command: "hold", duration_s: 30 }), never)).toEqual({ ok: true, message: "mode LOITER sent" });
    expect(mode.requests).toEqual([{ base_mode: 0, custom_mode: "LOITER" }]);
  });

  it("hold → set_mode AUTO.LOITER on PX4; a refused mode is a failure", async () => {
    const { rcl, src } = await mavros();
    rcl.serve("/uav1/mavros/set_mode", "mavros_msgs/srv/SetMode", () => ({ mode_sent: false }));
    expect(await src.execute(cmd({ command: "hold", duration_s: 5 }), never)).toEqual({ ok: false, message: "the autopilot did not take mode AUTO.LOITER" });
  });
});

describe("missing interface types", () => {
  it("names the missing mavros_msgs types, keeps relaying positions, and fails their commands with the fix", async () => {
    const installed = ALL_TYPES.filter((t) => !t.startsWith("mavros_msgs/"));
    const { rcl, src, got, lines } = await mavros({}, installed);
    expect(src.missingInterfaces()).toEqual(["mavros_msgs/msg/State", "mavros_msgs/srv/WaypointPush", "mavros_msgs/srv/CommandTOL", "mavros_msgs/srv/SetMode", "mavros_msgs/msg/Waypoint"]);
    const log = lines.map((l) => JSON.parse(l) as { msg: string; missing?: string[]; fix?: string[] });
    const report = log.find((l) => l.msg.startsWith("ROS 2 interface types missing"));
    expect(report?.missing).toContain("mavros_msgs/srv/CommandTOL");
    // One hint per package, not one per type (five here).
    expect(report?.fix).toEqual([expect.stringMatching(/^mavros_msgs: install MAVROS's messages \(sudo apt install ros-\$ROS_DISTRO-mavros-msgs\).*npx generate-ros-messages/)]);
    // The state topic is skipped; the others run.
    expect(rcl.nodes[0]?.subscriptions.some((s) => s.typeClass === "mavros_msgs/msg/State")).toBe(false);
    rcl.publish("/uav1/mavros/global_position/global", navSatFix(3, 4, 5));
    expect(got).toHaveLength(1);
    const r = await src.execute(cmd({ command: "emergency_land" }), never);
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.message).toMatch(/^interface mavros_msgs\/srv\/CommandTOL is not usable on the relay host: install MAVROS's messages/);
    expect(rcl.nodes[0]?.clients).toHaveLength(0);
  });

  it("refuses to start without the position type, saying which and how to install it", async () => {
    const rcl = new FakeRcl({ installed: ALL_TYPES.filter((t) => t !== "sensor_msgs/msg/NavSatFix") });
    const src = new Ros2Source({ droneIds: ["uav1"], rcl, host: rcl.host, profile: getProfile("mavros") });
    await expect(src.start(() => {})).rejects.toThrow(/cannot relay without sensor_msgs\/msg\/NavSatFix.*apt install ros-\$ROS_DISTRO-sensor-msgs/);
    expect(rcl.initialized).toBe(false);
  });

  it("default profile: missing dronefleet_interfaces fails those commands with the colcon hint", async () => {
    const rcl = new FakeRcl({ installed: ALL_TYPES.filter((t) => !t.startsWith("dronefleet_interfaces/")) });
    const src = new Ros2Source({ droneIds: ["uav1"], rcl, host: rcl.host, serviceWaitMs: 50 });
    sources.push(src);
    await src.start(() => {});
    const r = await src.execute(cmd({ command: "modify_waypoint", new_waypoint: { lat: 1, lon: 1, alt_m: 10 }, modification_reason: "" }), never);
    expect(r).toEqual({ ok: false, message: expect.stringMatching(/dronefleet_interfaces\/srv\/ModifyWaypoint is not usable.*colcon.*npx generate-ros-messages/) });
  });

  it("per-drone names override the templates for that drone only", async () => {
    const { rcl, got, src } = await mavros({ perDrone: { uav2: { topics: { fix: "/legacy/uav2/fix" }, services: { emergency_land: "/legacy/uav2/land" } } } });
    expect(src.topicFor("fix", "uav1")).toBe("/uav1/mavros/global_position/global");
    expect(src.serviceFor("emergency_land", "uav2")).toBe("/legacy/uav2/land");
    rcl.publish("/legacy/uav2/fix", navSatFix(9, 9, 9));
    expect(got.map((s) => s.drone_id)).toEqual(["uav2"]);
  });
});
