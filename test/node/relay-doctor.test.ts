/**
 * `npm run relay -- doctor`: the real CLI on this machine (no ROS 2) against an HTTP double of the
 * edge, then the checks that need ROS 2 with the rclnodejs double (missing interface types,
 * topics and services on the graph).
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
import { formatReport, runDoctor } from "../../relay/sources/ros2/doctor";
import { ALL_TYPES, FakeRcl } from "./relay-rcl-double";

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
    expect(lines).toContain("✗ ROS_DISTRO is not set: ROS 2 is not sourced in this shell");
    expect(r.stdout).toMatch(/fix: source \/opt\/ros\/<distro>\/setup\.bash/);
    expect(r.stdout).toMatch(/^✗ rclnodejs cannot be loaded: rclnodejs not installed/m);
    expect(r.stdout).toMatch(/fix: with ROS 2 sourced, run npm install/);
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
    expect(r.stdout).toMatch(/^✗ ROS_DISTRO is not set/m);
    expect(r.stdout).toMatch(/^- edge and token/m);
  });
});

describe("relay doctor with ROS 2 (rclnodejs double)", () => {
  const files: Record<string, string> = {
    "/relay.yaml": "edge: https://edge.example\nfleet: demo\ntoken: ok-token\nsource: ros2\nprofile: mavros\ndrones: [uav1]\n",
  };
  const parsed = parseRelayArgs(["--config", "/relay.yaml"], {
    env: {},
    readFile: (p) => files[p] ?? "",
    defaultRelayId: "x",
  });
  const fetch200 = (async () => new Response("{}", { status: 200 })) as typeof fetch;

  it("names the missing interface types and the topics and services not on the graph", async () => {
    const rcl = new FakeRcl({ installed: ALL_TYPES.filter((t) => !t.startsWith("mavros_msgs/")) });
    rcl.advertise("/uav1/mavros/global_position/global", "sensor_msgs/msg/NavSatFix");
    rcl.advertise("/uav1/mavros/battery", "sensor_msgs/msg/BatteryState");
    rcl.serve("/uav1/mavros/cmd/land", "mavros_msgs/srv/CommandTOL", () => ({ success: true, result: 0 }));
    const results = await runDoctor({ env: { ROS_DISTRO: "humble" }, parsed, loadRcl: async () => rcl, fetch: fetch200, discoveryMs: 0 });
    const report = formatReport(results);
    expect(report).toContain("✓ ROS 2 sourced (ROS_DISTRO=humble)");
    expect(report).toContain("✓ rclnodejs loads");
    expect(report).toMatch(/^✗ interface types missing: mavros_msgs\/msg\/State, mavros_msgs\/srv\/WaypointPush, mavros_msgs\/srv\/CommandTOL, mavros_msgs\/srv\/SetMode, mavros_msgs\/msg\/Waypoint$/m);
    expect(report).toMatch(/fix: install MAVROS's messages \(sudo apt install ros-\$ROS_DISTRO-mavros-msgs\)/);
    expect(report).toContain("✗ topics not on the ROS graph: /uav1/mavros/local_position/velocity_local, /uav1/mavros/state");
    expect(report).toContain("✗ services not on the ROS graph: /uav1/mavros/mission/push, /uav1/mavros/set_mode");
    expect(report).toMatch(/namespace:=<drone>\/mavros/);
    expect(report).toContain("✓ token accepted for fleet demo");
    expect(report).toContain("- outbox in memory only");
    expect(rcl.shutDown).toBe(true); // the doctor's node is cleaned up
    expect(report.trim().split("\n").at(-1)).toBe("3 problems found.");
  });

  it("all green: exit status 0 material", async () => {
    const rcl = new FakeRcl();
    for (const t of ["global_position/global", "battery", "local_position/velocity_local", "state"]) rcl.advertise(`/uav1/mavros/${t}`, "x/msg/Y");
    for (const s of ["cmd/land", "mission/push", "set_mode"]) rcl.serve(`/uav1/mavros/${s}`, "x/srv/Y", () => ({}));
    const results = await runDoctor({ env: { ROS_DISTRO: "jazzy" }, parsed, loadRcl: async () => rcl, fetch: fetch200, discoveryMs: 0 });
    expect(results.filter((r) => r.status === "fail")).toEqual([]);
    expect(formatReport(results)).toMatch(/All checks passed\.\n$/);
  });
});
