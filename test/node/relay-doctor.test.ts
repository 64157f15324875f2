/**
 * `npm run relay -- doctor`: the real CLI on this machine (no ROS 2) against an HTTP double of the
 * edge, then the checks that need ROS 2 with the rclnodejs double: a graph shared with a running
 * relay (whose own endpoints graph-wide listings include), publishers' QoS against the relay's
 * subscriptions, message rates, servers per service, type support that `require` does not check,
 * a failed rclnodejs build, and a shell where ROS 2 is not sourced.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseRelayArgs } from "../../relay/config";
import { formatReport, runDoctor, type DoctorDeps } from "../../relay/sources/ros2/doctor";
import { getProfile } from "../../relay/sources/ros2/profiles/index";
import type { RclLike } from "../../relay/sources/ros2/rcl";
import { Ros2Source } from "../../relay/sources/ros2/ros2";
import { ALL_TYPES, FakeGraph, FakeHost, FakeRcl, mavrosState, navSatFix, OVERLAY, RCLNODEJS, ROS } from "./relay-rcl-double";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "relay-doctor-"));
let server: Server;
let edgeUrl = "";
const seen: { path: string; auth: string | undefined }[] = [];

beforeAll(async () => {
  // The edge as the doctor sees it: /health answers; this token is expired.
  server = createServer((req, res) => {
    seen.push({ path: req.url ?? "", auth: req.headers.authorization });
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true }));
    } else if (req.url === "/v1/fleets/demo/status") {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "unauthorized", message: "token expired" } }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  edgeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function doctorCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // A shell without ROS 2: no ROS_DISTRO, AMENT_PREFIX_PATH, … (and rclnodejs is not installed).
    const child = spawn(process.execPath, [join(ROOT, "node_modules/tsx/dist/cli.mjs"), "relay/cli.ts", "doctor", ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: dir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`doctor did not exit; stdout: ${stdout} stderr: ${stderr}`));
    }, 30_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("relay doctor without ROS 2 (the real CLI)", () => {
  it("exits 1 and says what to fix, line by line, without crashing", async () => {
    writeFileSync(join(dir, "token"), "expired-token\n");
    writeFileSync(
      join(dir, "relay.yaml"),
      `edge: ${edgeUrl}\nfleet: demo\ntoken_file: ${join(dir, "token")}\nsource: ros2\nprofile: mavros\ndrones: [uav1, uav2]\nlink:\n  outbox:\n    dir: ${join(dir, "outbox")}\n`,
    );
    const r = await doctorCli(["--config", join(dir, "relay.yaml")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("dronefleet relay doctor");
    expect(lines).toContain(`✓ configuration valid (${join(dir, "relay.yaml")}): source ros2, profile mavros, 2 drone(s), fleet demo`);
    expect(lines).toContain("✗ ROS 2 is not sourced in this shell (ROS_DISTRO and AMENT_PREFIX_PATH are unset)");
    expect(r.stdout).toMatch(/fix: .*source \/opt\/ros\/<distro>\/setup\.bash/);
    expect(lines).toContain("✗ rclnodejs is not installed");
    expect(r.stdout).toMatch(/fix: with ROS 2 sourced, in the repository's root: npm_config_yes=true npm ci --omit=dev --workspace relay/);
    expect(lines).toContain("- rclnodejs not loaded");
    expect(r.stdout).toMatch(/^- interface types not checked \(ROS 2 not sourced\); profile mavros needs .*mavros_msgs\/srv\/CommandTOL/m);
    expect(lines).toContain("- topics and services on the ROS graph");
    expect(lines).toContain(`✓ outbox directory ${join(dir, "outbox")} writable`);
    expect(r.stdout).toMatch(new RegExp(`^✓ edge reachable \\(${edgeUrl.replaceAll(".", "\\.")}/health in \\d+ ms\\)$`, "m"));
    expect(lines).toContain("✗ token rejected (401: token expired): expired, malformed, or signed with another secret");
    expect(r.stdout).toMatch(/fix: mint one: npm run token -- --fleet demo --role relay/);
    expect(lines.at(-1)).toBe("3 problems found.");
    expect(r.stdout).not.toContain("expired-token");
    expect(seen.find((s) => s.path === "/v1/fleets/demo/status")?.auth).toBe("Bearer expired-token");
  });

  it("reports an unusable configuration and still checks ROS 2", async () => {
    const r = await doctorCli([]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✗ configuration: missing --edge/m);
    expect(r.stdout).toMatch(/^✗ ROS 2 is not sourced in this shell/m);
    expect(r.stdout).toMatch(/^- edge and token/m);
  });
});

describe("relay doctor with ROS 2 (rclnodejs double)", () => {
  const files: Record<string, string> = {
    "/relay.yaml": "edge: https://edge.example\nfleet: demo\ntoken: ok-token\nsource: ros2\nprofile: mavros\ndrones: [uav1]\n",
    "/reliable.yaml": "edge: https://edge.example\nfleet: demo\ntoken: ok-token\nsource: ros2\nprofile: mavros\ndrones: [uav1]\nqos:\n  fix: default\n",
    "/default.yaml": "edge: https://edge.example\nfleet: demo\ntoken: ok-token\nsource: ros2\ndrones: [uav1]\n",
    "/routes.yaml":
      "edge: https://edge.example\nfleet: demo\ntoken: ok-token\nsource: ros2\nintent_topic: /{drone}/plan\n" +
      "drones:\n  - uav1\n  - id: uav2\n    intent_topic: /planner/uav2/path\n  - id: uav3\n    intent_topic: false\n  - uav4\n",
  };
  const parse = (file: string) => parseRelayArgs(["--config", file], { env: {}, readFile: (p) => files[p] ?? "", defaultRelayId: "x" });
  const parsed = parse("/relay.yaml");
  const fetch200 = (async () => new Response("{}", { status: 200 })) as typeof fetch;
  const MAVROS_TOPICS = ["global_position/global", "battery", "local_position/velocity_local", "state"] as const;

  /** The doctor against `rcl`, its time driven through the shared graph (no real waiting). */
  async function doctor(rcl: FakeRcl, extra: Partial<DoctorDeps> = {}) {
    const results = await runDoctor({
      env: {},
      parsed,
      host: rcl.host,
      loadRcl: async () => rcl,
      fetch: fetch200,
      discoveryMs: 500,
      rateWindowMs: 2000,
      sleep: async (ms) => rcl.graph.advance(ms),
      ...extra,
    });
    return { results, report: formatReport(results) };
  }

  /** A MAVROS vehicle on the graph: its four topics at `hz`, its three services. */
  function mavrosVehicle(rcl: FakeRcl, id: string, opts: { hz?: number; skip?: string[] } = {}) {
    for (const t of MAVROS_TOPICS) {
      if (opts.skip?.includes(t)) continue;
      const message = t === "state" ? () => mavrosState({ armed: false, mode: "AUTO.LOITER" }) : () => navSatFix(1, 2, 3);
      rcl.advertise(`/${id}/mavros/${t}`, "x/msg/Y", { node: "mavros", namespace: `/${id}`, reliability: t === "state" ? "reliable" : "best_effort", rateHz: opts.hz ?? 10, message });
    }
    for (const s of ["cmd/land", "mission/push", "set_mode"]) {
      if (opts.skip?.includes(s)) continue;
      rcl.serve(`/${id}/mavros/${s}`, "x/srv/Y", () => ({ success: true }), { node: "mavros", namespace: `/${id}` });
    }
  }

  it("all green: publishers, QoS, rates, servers and type support", async () => {
    const rcl = new FakeRcl();
    mavrosVehicle(rcl, "uav1");
    const { results, report } = await doctor(rcl);
    expect(results.filter((r) => r.status === "fail")).toEqual([]);
    expect(report).toContain("✓ ROS 2 sourced (ROS_DISTRO=humble, AMENT_PREFIX_PATH=");
    expect(report).toContain("✓ rclnodejs 2.2.0 built (build/Release/rclnodejs.node)");
    expect(report).toContain("✓ rclnodejs loads");
    expect(report).toContain("✓ interface types generated (8, checked with rclnodejs)");
    expect(report).toContain("✓ type support libraries found for sensor_msgs, geometry_msgs, mavros_msgs");
    expect(report).toMatch(/^✓ all 4 topics receive messages: \/uav1\/mavros\/global_position\/global 10\.0 Hz \(1 publisher, best effort\), .*\/uav1\/mavros\/state 10\.0 Hz \(1 publisher, reliable\)$/m);
    expect(report).toContain("✓ all 3 command services served by another node");
    expect(report).toContain("✓ type support loads for 3 service types (a client of each was created)");
    expect(report).toMatch(/All checks passed\.\n$/);
    expect(rcl.shutDown).toBe(true); // the doctor's node is cleaned up
  });

  it("the graph-wide listing includes a running relay's own endpoints (the defect); the doctor counts only others' publishers and servers", async () => {
    const graph = new FakeGraph();
    // The relay runs on the ground station: its subscriptions, and a client from a hold command.
    const relayRcl = new FakeRcl({ graph });
    const relay = new Ros2Source({ droneIds: ["uav1"], rcl: relayRcl, host: relayRcl.host, profile: getProfile("mavros"), serviceWaitMs: 10 });
    await relay.start(() => {});
    try {
      await relay.execute({ type: "command", command_id: "doctor-cmd-1", drone_id: "uav1", timeout_ms: 500, command: "hold", duration_s: 1 }, new AbortController().signal);
      // The drone has MAVROS up, minus its velocity and state topics and its set_mode and push services.
      const rcl = new FakeRcl({ graph });
      mavrosVehicle(rcl, "uav1", { skip: ["local_position/velocity_local", "state", "mission/push", "set_mode"] });
      // What the old check read: every topic and set_mode "visible", the relay's own endpoints among them.
      const probe = new FakeRcl({ graph });
      await probe.init();
      const node = probe.createNode("probe");
      expect(node.getTopicNamesAndTypes().map((t) => t.name)).toEqual(expect.arrayContaining(MAVROS_TOPICS.map((t) => `/uav1/mavros/${t}`)));
      expect(node.getServiceNamesAndTypes().map((t) => t.name)).toContain("/uav1/mavros/set_mode");
      node.destroy();

      const { report } = await doctor(rcl);
      expect(report).toContain("✗ topics with no publisher (other than the relay's own nodes): /uav1/mavros/local_position/velocity_local, /uav1/mavros/state");
      expect(report).toMatch(/without its state topic a drone's armed and status are unknown: its samples say state_known false, and the edge's collision avoidance infers airborne from altitude and speed/);
      // The route topic is optional: noted without a publisher, not counted as a problem.
      expect(report).toContain("- route topics (mavros_msgs/msg/WaypointList) with no publisher: /uav1/mavros/mission/waypoints");
      expect(report).toContain("✓ 2 of 4 topics receive messages: /uav1/mavros/global_position/global 10.0 Hz (1 publisher, best effort), /uav1/mavros/battery 10.0 Hz (1 publisher, best effort)");
      expect(report).toContain("✗ services with no server (other than the relay's own clients): /uav1/mavros/mission/push, /uav1/mavros/set_mode");
      expect(report).toMatch(/namespace:=<drone>\/mavros/);
      expect(report.trim().split("\n").at(-1)).toBe("2 problems found.");
    } finally {
      await relay.stop();
    }
  });

  it("names a best-effort publisher against a reliable subscription as the reason nothing arrives", async () => {
    const rcl = new FakeRcl();
    mavrosVehicle(rcl, "uav1");
    const { report } = await doctor(rcl, { parsed: parse("/reliable.yaml") });
    expect(report).toContain(
      "✗ /uav1/mavros/global_position/global: best-effort publisher (mavros) but the relay subscribes reliable (qos.fix: default): a reliable subscription never matches a best-effort publisher, so nothing arrives",
    );
    expect(report).toMatch(/fix: set qos\.fix: sensor_data in the relay config/);
    expect(report).toContain("✓ 3 of 4 topics receive messages");
    expect(report.trim().split("\n").at(-1)).toBe("1 problem found.");
  });

  it("lists the route topics (config intent_topic, a drone's own) with type, publishers and rate; one without a publisher is noted, a best-effort one fails", async () => {
    const rcl = new FakeRcl();
    const route = () => ({ header: { frame_id: "map" }, poses: [] });
    rcl.advertise("/uav1/plan", "nav_msgs/msg/Path", { node: "planner", reliability: "reliable", rateHz: 1, message: route });
    rcl.advertise("/planner/uav2/path", "nav_msgs/msg/Path", { node: "planner2", reliability: "best_effort", rateHz: 1, message: route });
    const { results, report } = await doctor(rcl, { parsed: parse("/routes.yaml") });
    expect(report).toContain("✓ route topics (nav_msgs/msg/Path) with a publisher: /uav1/plan (1 publisher, reliable, 1.0 Hz)");
    expect(report).toContain(
      "✗ route topic /planner/uav2/path: best-effort publisher (planner2) but the relay subscribes routes reliable: a reliable subscription never matches a best-effort publisher, so no route arrives",
    );
    expect(report).toContain("- route topics (nav_msgs/msg/Path) with no publisher: /uav4/plan");
    expect(report).toMatch(/optional: without its route the edge predicts a drone .*intent_topic: false/);
    expect(report).not.toContain("uav3/plan"); // intent_topic: false for uav3
    expect(results.filter((r) => r.status === "fail" && r.title.includes("route"))).toHaveLength(1);
  });

  it("a publisher that sends nothing in the window is named", async () => {
    const rcl = new FakeRcl();
    mavrosVehicle(rcl, "uav1", { skip: ["battery"] });
    rcl.advertise("/uav1/mavros/battery", "sensor_msgs/msg/BatteryState", { node: "mavros", namespace: "/uav1" }); // never publishes
    const { report } = await doctor(rcl);
    expect(report).toContain("✗ topics with a publisher but no message in 2 s: /uav1/mavros/battery");
  });

  it("names the missing interface types with one hint per package", async () => {
    const rcl = new FakeRcl({ installed: ALL_TYPES.filter((t) => !t.startsWith("mavros_msgs/")) });
    mavrosVehicle(rcl, "uav1");
    const { report } = await doctor(rcl);
    expect(report).toMatch(/^✗ interface types missing: mavros_msgs\/msg\/State, mavros_msgs\/srv\/WaypointPush, mavros_msgs\/srv\/CommandTOL, mavros_msgs\/srv\/SetMode, mavros_msgs\/msg\/Waypoint$/m);
    const fix = report.split("\n").find((l) => l.includes("fix: install MAVROS's messages")) ?? "";
    expect(fix.match(/install MAVROS's messages/g)).toHaveLength(1);
    expect(fix).toMatch(/sudo apt install ros-\$ROS_DISTRO-mavros-msgs.*npx generate-ros-messages/);
  });

  it("type support: an overlay that is not sourced, and one whose library is off LD_LIBRARY_PATH (found by creating a client)", async () => {
    // ROS 2 sourced, the workspace not: rclnodejs.require passes, the library is nowhere.
    const unsourced = new FakeRcl({ host: new FakeHost({ sourced: "ros" }) });
    let { report } = await doctor(unsourced, { parsed: parse("/default.yaml") });
    expect(report).toContain("✓ interface types generated (7, checked with rclnodejs)");
    expect(report).toContain("✗ type support library missing: libdronefleet_interfaces__rosidl_typesupport_c.so (dronefleet_interfaces)");
    expect(report).toMatch(/fix: libdronefleet_interfaces__rosidl_typesupport_c\.so is on neither LD_LIBRARY_PATH nor AMENT_PREFIX_PATH\/lib: .*source \/opt\/dronefleet\/ws\/install\/setup\.bash/);
    // On the ament path but not the loader's: only creating a client shows it.
    const host = new FakeHost({ sourced: "ros", env: { AMENT_PREFIX_PATH: `${OVERLAY}:${ROS}` } });
    ({ report } = await doctor(new FakeRcl({ host }), { parsed: parse("/default.yaml") }));
    expect(report).toContain("✓ type support libraries found for sensor_msgs, geometry_msgs, std_msgs, dronefleet_interfaces, std_srvs");
    expect(report).toContain(
      "✗ type support for dronefleet_interfaces/srv/ModifyWaypoint does not load: libdronefleet_interfaces__rosidl_typesupport_c.so: cannot open shared object file: No such file or directory",
    );
    expect(report).toContain("✗ type support for dronefleet_interfaces/srv/AssignMission does not load");
    expect(report).toMatch(/fix: libdronefleet_interfaces__rosidl_typesupport_c\.so is not on LD_LIBRARY_PATH, where the loader looks/);
  });

  it("detects a failed rclnodejs build and says how to rebuild, without loading it", async () => {
    const rcl = new FakeRcl();
    rcl.host.remove(`${RCLNODEJS}/build`);
    let loads = 0;
    const { report } = await doctor(rcl, { loadRcl: async (): Promise<RclLike> => (loads++, rcl) });
    expect(loads).toBe(0);
    expect(report).toMatch(/^✗ rclnodejs is installed but its native addon was never built \(no \/opt\/dronefleet\/node_modules\/rclnodejs\/build\/Release\/rclnodejs\.node\): .*npx rimraf/m);
    expect(report).toMatch(/fix: with ROS 2 sourced, in the repository's root: npm_config_yes=true npm rebuild rclnodejs, then npx generate-ros-messages; it built when node_modules\/rclnodejs\/build\/Release\/rclnodejs\.node exists/);
    expect(report).toContain("✓ interface types generated (8, checked with the ament index (AMENT_PREFIX_PATH))");
    expect(rcl.host.rebuilds).toBe(0);
  });

  it("never loads rclnodejs in a shell where ROS 2 is not sourced", async () => {
    const rcl = new FakeRcl({ host: new FakeHost({ sourced: "none" }) });
    let loads = 0;
    const { report } = await doctor(rcl, { loadRcl: async (): Promise<RclLike> => (loads++, rcl) });
    expect(loads).toBe(0);
    expect(rcl.host.rebuilds).toBe(0);
    expect(report).toContain("✗ ROS 2 is not sourced in this shell (ROS_DISTRO and AMENT_PREFIX_PATH are unset)");
    expect(report).toContain("    fix: source /opt/ros/humble/setup.bash");
    expect(report).toContain("✓ rclnodejs 2.2.0 built (build/Release/rclnodejs.node)");
    expect(report).toContain("- rclnodejs not loaded");
    expect(report).toMatch(/loading rclnodejs now would make its loader rebuild its native addon, deleting the working build/);
  });
});
