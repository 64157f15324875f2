/**
 * The relay CLI: argument rules through parseRelayArgs (fast, no process), then the real binary
 * via tsx for exit codes, and one end-to-end run of the simulated fleet against a ws edge double.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { RelayHello, TelemetryBatch } from "../../edge/protocol";
import { parseRelayArgs, type ParseResult } from "../../relay/config";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TSX = join(ROOT, "node_modules/tsx/dist/cli.mjs");
const dir = mkdtempSync(join(tmpdir(), "relay-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const files: Record<string, string> = {};
const deps = (env: Record<string, string> = {}) => ({
  env,
  readFile: (p: string): string => {
    const f = files[p];
    if (f === undefined) throw new Error(`ENOENT: no such file ${p}`);
    return f;
  },
  defaultRelayId: "host-123",
});
const BASE = ["--edge", "http://127.0.0.1:8787", "--fleet", "demo", "--token", "t0k", "--source", "sim"];

function errorOf(r: ParseResult): string {
  if (r.kind !== "error") throw new Error(`expected a usage error, got ${r.kind}`);
  return r.message;
}

describe("parseRelayArgs", () => {
  it("accepts the documented flags with defaults", () => {
    const r = parseRelayArgs(BASE, deps());
    expect(r).toEqual({
      kind: "ok",
      config: expect.objectContaining({
        edge: "http://127.0.0.1:8787",
        fleet: "demo",
        token: "t0k",
        source: "sim",
        drones: 5,
        rateHz: 1,
        relayId: "host-123",
        logLevel: "info",
      }),
    });
  });

  it("rejects unknown flags, missing required ones and out-of-range numbers", () => {
    expect(errorOf(parseRelayArgs([...BASE, "--bogus"], deps()))).toMatch(/--bogus/);
    expect(errorOf(parseRelayArgs(["--fleet", "demo", "--token", "t", "--source", "sim"], deps()))).toMatch(/missing --edge/);
    expect(errorOf(parseRelayArgs(["--edge", "http://x", "--token", "t", "--source", "sim"], deps()))).toMatch(/missing --fleet/);
    expect(errorOf(parseRelayArgs(["--edge", "http://x", "--fleet", "f", "--source", "sim"], deps()))).toMatch(/missing --token/);
    expect(errorOf(parseRelayArgs([...BASE, "--drones", "0"], deps()))).toMatch(/--drones.*1\.\.20000/);
    expect(errorOf(parseRelayArgs([...BASE, "--drones", "20001"], deps()))).toMatch(/--drones/);
    expect(errorOf(parseRelayArgs([...BASE, "--drones", "2.5"], deps()))).toMatch(/--drones/);
    expect(errorOf(parseRelayArgs([...BASE, "--rate", "11"], deps()))).toMatch(/--rate.*1\.\.10/);
    expect(errorOf(parseRelayArgs([...BASE, "--rate", "0.5"], deps()))).toMatch(/--rate/);
    expect(errorOf(parseRelayArgs([...BASE, "--source", "gazebo"], deps()))).toMatch(/--source/);
    expect(errorOf(parseRelayArgs(["--edge", "ftp://x", "--fleet", "f", "--token", "t", "--source", "sim"], deps()))).toMatch(/--edge/);
    expect(errorOf(parseRelayArgs([...BASE, "--edge"], deps()))).toMatch(/--edge/);
    expect(errorOf(parseRelayArgs([...BASE, "stray"], deps()))).toMatch(/stray|positional/i);
  });

  it("layers flags over environment over the config file", () => {
    files["/cfg.json"] = JSON.stringify({ edge: "http://from-file", fleet: "filefleet", "token-file": "/tok", source: "ros2", drones: 7, rate: 2 });
    files["/tok"] = "file-token\n";
    const fromFile = parseRelayArgs(["--config", "/cfg.json"], deps());
    expect(fromFile).toMatchObject({ kind: "ok", config: { edge: "http://from-file", fleet: "filefleet", token: "file-token", source: "ros2", drones: 7, rateHz: 2 } });
    const withEnv = parseRelayArgs(["--config", "/cfg.json"], deps({ RELAY_EDGE: "http://from-env", RELAY_TOKEN: "env-token" }));
    expect(withEnv).toMatchObject({ kind: "ok", config: { edge: "http://from-env", token: "env-token", fleet: "filefleet" } });
    const withFlags = parseRelayArgs(["--config", "/cfg.json", "--edge", "http://from-flag", "--drones", "3"], deps({ RELAY_EDGE: "http://from-env" }));
    expect(withFlags).toMatchObject({ kind: "ok", config: { edge: "http://from-flag", drones: 3 } });
  });

  it("reads ros2 service name templates from the config file and rejects bad ones", () => {
    files["/svc.json"] = JSON.stringify({ services: { emergency_land: "/{drone}/px4/land", hold: "/{drone}/hold" }, topics: { fix: "/{drone}/gps" } });
    expect(parseRelayArgs([...BASE, "--config", "/svc.json"], deps())).toMatchObject({
      kind: "ok",
      config: { services: { emergency_land: "/{drone}/px4/land", hold: "/{drone}/hold" }, topics: { fix: "/{drone}/gps" } },
    });
    files["/svc-bad.json"] = JSON.stringify({ services: { takeoff: "/{drone}/takeoff" } });
    expect(errorOf(parseRelayArgs([...BASE, "--config", "/svc-bad.json"], deps()))).toMatch(/unknown service "takeoff"/);
    files["/svc-nodrone.json"] = JSON.stringify({ services: { hold: "/hold" } });
    expect(errorOf(parseRelayArgs([...BASE, "--config", "/svc-nodrone.json"], deps()))).toMatch(/service "hold" must be a string containing \{drone\}/);
    expect(parseRelayArgs(BASE, deps())).toMatchObject({ kind: "ok", config: { services: undefined } });
  });

  it("reports config file problems as usage errors", () => {
    files["/bad.json"] = "{ nope";
    files["/unknown.json"] = JSON.stringify({ edgee: "x" });
    expect(errorOf(parseRelayArgs(["--config", "/missing.json"], deps()))).toMatch(/cannot read --config/);
    expect(errorOf(parseRelayArgs(["--config", "/bad.json"], deps()))).toMatch(/not valid JSON/);
    expect(errorOf(parseRelayArgs(["--config", "/unknown.json"], deps()))).toMatch(/unknown key "edgee"/);
    expect(errorOf(parseRelayArgs([...BASE.slice(0, 4), "--token-file", "/nope", "--source", "sim"], deps()))).toMatch(/--token-file/);
  });
});

/** Run the CLI with tsx under this Node; resolves with exit code and output, bounded in time. */
function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; onSpawn?: (terminate: () => void) => void } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [TSX, "relay/cli.ts", ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? dir, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`relay cli did not exit within ${opts.timeoutMs ?? 20_000} ms; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    opts.onSpawn?.(() => child.kill("SIGTERM"));
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("relay CLI process", () => {
  it("exits 2 with a clear message on an unknown flag, 0 with usage on --help", async () => {
    const [bad, help] = await Promise.all([runCli(["--bogus"]), runCli(["--help"])]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Unknown option '--bogus'/);
    expect(bad.stderr).toMatch(/--help/);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: npm run relay -- --edge URL --fleet F --token T --source sim\|ros2/);
  });

  it("--source ros2 in a shell without ROS 2 sourced exits 1 saying what to source, without loading rclnodejs", async () => {
    const r = await runCli(["--edge", "http://127.0.0.1:1", "--fleet", "demo", "--token", "t", "--source", "ros2", "--drone-ids", "uav1", "--health-port", "off"]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split("\n").map((l) => JSON.parse(l) as { msg: string; error?: string });
    const failed = lines.find((l) => l.msg === "source failed to start");
    expect(failed?.error).toMatch(/^ROS 2 is not sourced in this shell \(ROS_DISTRO and AMENT_PREFIX_PATH are unset\); .*source .*setup\.bash.*its loader would try to rebuild/);
  });

  it("runs the simulated fleet against an edge, never logs the token, and stops on SIGTERM", async () => {
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await new Promise((r) => wss.once("listening", r));
    const port = (wss.address() as AddressInfo).port;
    const frames: unknown[] = [];
    const auth: (string | undefined)[] = [];
    let batches = 0;
    let terminate: (() => void) | null = null;
    let signalled = false;
    wss.on("connection", (ws, req) => {
      auth.push(req.headers.authorization);
      ws.on("message", (data) => {
        const f = JSON.parse(String(data)) as { type: string; batch_id?: number };
        frames.push(f);
        if (f.type === "relay_hello") ws.send(JSON.stringify({ type: "hello_ack", fleet: "demo", last_seq: {} }));
        // Stop the relay once a few batches have arrived.
        if (f.type === "telemetry_batch" && ++batches === 3 && terminate) {
          signalled = true;
          terminate();
        }
      });
    });
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "cli-secret-token\n");
    try {
      const res = await runCli(
        ["--edge", `http://127.0.0.1:${port}`, "--fleet", "demo", "--token-file", tokenFile, "--source", "sim", "--drones", "20", "--rate", "10", "--batch-window-ms", "50"],
        { onSpawn: (t) => (terminate = t), timeoutMs: 30_000 },
      );
      if (!signalled) throw new Error(`never saw batches; stderr: ${res.stderr}`);
      expect(res.code).toBe(0);
      expect(auth[0]).toBe("Bearer cli-secret-token");
      const hello = RelayHello.parse(frames[0]);
      expect(hello.drone_ids).toHaveLength(20);
      expect(hello.source).toBe("sim");
      const batches = frames.filter((f) => (f as { type: string }).type === "telemetry_batch").map((f) => TelemetryBatch.parse(f));
      expect(batches.length).toBeGreaterThanOrEqual(3);
      const lines = res.stderr.trim().split("\n").map((l) => JSON.parse(l) as { msg: string; level: string; batch_window_ms?: number });
      expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(["relay starting", "connected to edge", "relay stopped"]));
      expect(lines.find((l) => l.msg === "relay starting")?.batch_window_ms).toBe(50);
      expect(res.stderr).not.toContain("cli-secret-token");
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    }
  });
});
