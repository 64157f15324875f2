/**
 * Relay configuration: YAML/JSON files validated with errors that name the bad key (as written in
 * the file, the environment or the flags), environment overrides, defaults for a systemd service,
 * and --print-config never showing the token.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { formatConfig, parseRelayArgs, type ParseResult, type RelayConfig } from "../../relay/config";

const files: Record<string, string> = {};
const deps = (env: Record<string, string> = {}) => ({
  env,
  readFile: (p: string): string => {
    const f = files[p];
    if (f === undefined) throw new Error(`ENOENT: no such file ${p}`);
    return f;
  },
  defaultRelayId: "host-1",
});
const BASE = ["--edge", "http://127.0.0.1:8787", "--fleet", "demo", "--token", "t0k", "--source", "sim"];

function ok(r: ParseResult): RelayConfig {
  if (r.kind !== "ok" && r.kind !== "print-config") throw new Error(`expected a config, got ${r.kind}: ${r.kind === "error" ? r.message : ""}`);
  return r.config;
}
function errorOf(r: ParseResult): string {
  if (r.kind !== "error") throw new Error(`expected a usage error, got ${r.kind}`);
  return r.message;
}

files["/tok"] = "file-token\n";
files["/relay.yaml"] = `
edge: https://edge.example.com
fleet: north
token_file: /tok
source: ros2
profile: mavros
mavros:
  autopilot: ardupilot
drones:
  - uav1
  - id: uav2
    topics:
      fix: /legacy/{drone}/gps
    services:
      emergency_land: /legacy/uav2/land
log_level: warn
link:
  outbox:
    dir: /var/lib/relay/outbox
    max_bytes: 64MiB
    fsync_ms: 500
health:
  host: 0.0.0.0
  port: 9100
  grace_ms: 5000
`;

describe("config file", () => {
  it("reads YAML with nested sections, per-drone names and the mavros options", () => {
    const cfg = ok(parseRelayArgs(["--config", "/relay.yaml"], deps()));
    expect(cfg).toMatchObject({
      edge: "https://edge.example.com",
      fleet: "north",
      token: "file-token",
      tokenFrom: { kind: "file", path: "/tok" },
      source: "ros2",
      profile: "mavros",
      mavros: { autopilot: "ardupilot" },
      droneIds: ["uav1", "uav2"],
      drones: 2,
      perDrone: { uav2: { topics: { fix: "/legacy/uav2/gps" }, services: { emergency_land: "/legacy/uav2/land" } } },
      logLevel: "warn",
      outbox: { dir: "/var/lib/relay/outbox", maxBytes: 64 * 1024 * 1024, fsyncMs: 500 },
      health: { enabled: true, host: "0.0.0.0", port: 9100, graceMs: 5000 },
      configFile: "/relay.yaml",
    });
  });

  it("reads JSON for a .json name, with the same keys (hyphenated top-level keys too)", () => {
    files["/relay.json"] = JSON.stringify({ edge: "http://x", fleet: "f", "token-file": "/tok", source: "ros2", "drone-ids": ["a", "b"], link: { outbox: { dir: null } } });
    expect(ok(parseRelayArgs(["--config", "/relay.json"], deps()))).toMatchObject({ droneIds: ["a", "b"], outbox: { dir: null }, token: "file-token" });
  });

  it("reads the subscription QoS per topic (sensor_data by default), or one profile for all", () => {
    files["/qos.yaml"] = "qos:\n  fix: default\n  state: system_default\n";
    expect(ok(parseRelayArgs([...BASE, "--config", "/qos.yaml"], deps())).qos).toEqual({ fix: "default", state: "system_default" });
    files["/qos-all.yaml"] = "qos: default\n";
    expect(ok(parseRelayArgs([...BASE, "--config", "/qos-all.yaml"], deps())).qos).toEqual({ fix: "default", battery: "default", velocity: "default", state: "default" });
    expect(ok(parseRelayArgs(BASE, deps())).qos).toBeUndefined();
    files["/qos-bad.yaml"] = "qos:\n  gps: default\n";
    expect(errorOf(parseRelayArgs([...BASE, "--config", "/qos-bad.yaml"], deps()))).toMatch(/--config \/qos-bad\.yaml: qos: unknown topic "gps" \(expected fix, battery, velocity, state\)/);
    files["/qos-bad2.yaml"] = "qos:\n  fix: reliable\n";
    expect(errorOf(parseRelayArgs([...BASE, "--config", "/qos-bad2.yaml"], deps()))).toMatch(/qos\.fix: expected sensor_data, default, system_default, got "reliable"/);
  });

  it("reads link.batch_window_ms (default 100, 1..1000) from the file, RELAY_BATCH_WINDOW_MS or --batch-window-ms", () => {
    expect(ok(parseRelayArgs(BASE, deps())).batchWindowMs).toBe(100);
    files["/window.yaml"] = "link:\n  batch_window_ms: 250\n";
    expect(ok(parseRelayArgs([...BASE, "--config", "/window.yaml"], deps())).batchWindowMs).toBe(250);
    expect(ok(parseRelayArgs([...BASE, "--config", "/window.yaml"], deps({ RELAY_BATCH_WINDOW_MS: "20" }))).batchWindowMs).toBe(20);
    expect(ok(parseRelayArgs([...BASE, "--config", "/window.yaml", "--batch-window-ms", "1"], deps({ RELAY_BATCH_WINDOW_MS: "20" }))).batchWindowMs).toBe(1);
    for (const bad of ["0", "1001", "2.5", "soon"]) {
      expect(errorOf(parseRelayArgs([...BASE, "--batch-window-ms", bad], deps()))).toBe(`--batch-window-ms: expected milliseconds in 1..1000, got ${/^[\d.]+$/.test(bad) ? bad : `"${bad}"`}`);
    }
    expect(errorOf(parseRelayArgs(BASE, deps({ RELAY_BATCH_WINDOW_MS: "-5" })))).toBe("RELAY_BATCH_WINDOW_MS: expected milliseconds in 1..1000, got -5");
    files["/window-bad.yaml"] = "link:\n  batch_window_ms: 5000\n";
    expect(errorOf(parseRelayArgs([...BASE, "--config", "/window-bad.yaml"], deps()))).toBe("--config /window-bad.yaml: link.batch_window_ms: expected milliseconds in 1..1000, got 5000");
  });

  it("reads link.max_frames_per_second (default 100, 0..1000) from the file, RELAY_MAX_FRAMES_PER_SECOND or --max-frames-per-second", () => {
    expect(ok(parseRelayArgs(BASE, deps())).maxFramesPerSecond).toBe(100);
    files["/frames.yaml"] = "link:\n  max_frames_per_second: 50\n";
    expect(ok(parseRelayArgs([...BASE, "--config", "/frames.yaml"], deps())).maxFramesPerSecond).toBe(50);
    expect(ok(parseRelayArgs([...BASE, "--config", "/frames.yaml"], deps({ RELAY_MAX_FRAMES_PER_SECOND: "200" }))).maxFramesPerSecond).toBe(200);
    expect(ok(parseRelayArgs([...BASE, "--config", "/frames.yaml", "--max-frames-per-second", "0"], deps({ RELAY_MAX_FRAMES_PER_SECOND: "200" }))).maxFramesPerSecond).toBe(0);
    expect(errorOf(parseRelayArgs([...BASE, "--max-frames-per-second", "1001"], deps()))).toBe("--max-frames-per-second: expected frames per second in 0..1000 (0: the fixed window), got 1001");
  });

  it("reads the route topic: intent_topic (a template with {drone}, or false) and a drone's own", () => {
    const ros = ["--edge", "http://127.0.0.1:8787", "--fleet", "demo", "--token", "t0k", "--source", "ros2"];
    expect(ok(parseRelayArgs(ros, deps())).intentTopic).toBeUndefined(); // the profile's: /{drone}/route
    files["/intent.yaml"] = "intent_topic: /fleet/{drone}/plan\ndrones:\n  - uav1\n  - id: uav2\n    intent_topic: /planner/{drone}/path\n  - id: uav3\n    intent_topic: false\n";
    const cfg = ok(parseRelayArgs([...ros, "--config", "/intent.yaml"], deps()));
    expect(cfg.intentTopic).toBe("/fleet/{drone}/plan");
    expect(cfg.perDrone).toEqual({ uav2: { intentTopic: "/planner/uav2/path" }, uav3: { intentTopic: false } });
    files["/intent-off.yaml"] = "intent_topic: false\n";
    expect(ok(parseRelayArgs([...ros, "--config", "/intent-off.yaml"], deps())).intentTopic).toBe(false);
    const bad = (yaml: string): string => {
      files["/intent-bad.yaml"] = yaml;
      return errorOf(parseRelayArgs([...ros, "--config", "/intent-bad.yaml"], deps()));
    };
    expect(bad("intent_topic: /route\n")).toMatch(/^--config \/intent-bad\.yaml: intent_topic: "\/route" must contain \{drone\}/);
    expect(bad("intent_topic: /{drone}/my route\n")).toMatch(/intent_topic: "\/\{drone\}\/my route" is not a valid ROS topic name/);
    expect(bad("intent_topic: true\n")).toMatch(/intent_topic: expected a topic template containing \{drone\}, or false for none/);
    expect(bad("drones:\n  - id: uav1\n    intent_topic: //x\n")).toMatch(/drones\[0\]\.intent_topic: "\/\/x" is not a valid ROS topic name/);
    // --print-config shows the effective route topics, and reads back the same.
    const printed = formatConfig(cfg);
    const doc = parseYaml(printed) as Record<string, unknown>;
    expect(doc).toMatchObject({ intent_topic: "/fleet/{drone}/plan", drones: ["uav1", { id: "uav2", intent_topic: "/planner/uav2/path" }, { id: "uav3", intent_topic: false }] });
    files["/intent-printed.yaml"] = printed;
    expect(ok(parseRelayArgs(["--config", "/intent-printed.yaml"], deps({ RELAY_TOKEN: "x" }))).perDrone).toEqual(cfg.perDrone);
    expect((parseYaml(formatConfig(ok(parseRelayArgs(ros, deps())))) as Record<string, unknown>).intent_topic).toBe("/{drone}/route");
  });

  it("names the bad key in the file, nested as written", () => {
    const bad = (yaml: string): string => {
      files["/bad.yaml"] = yaml;
      return errorOf(parseRelayArgs([...BASE, "--config", "/bad.yaml"], deps()));
    };
    expect(bad("link:\n  outbox:\n    max_bytes: -5\n")).toMatch(/^--config \/bad\.yaml: link\.outbox\.max_bytes: expected a positive number of bytes.*got -5$/);
    expect(bad("link:\n  outbox:\n    max_bytes: lots\n")).toMatch(/link\.outbox\.max_bytes: expected a positive number/);
    expect(bad("health:\n  port: 70000\n")).toMatch(/health\.port: expected a port in 0\.\.65535, or off/);
    expect(bad("health:\n  prt: 1\n")).toMatch(/health: unknown key "prt"/);
    expect(bad("rate: 11\n")).toMatch(/: rate: expected a number in 1\.\.10, got 11/);
    expect(bad("log-level: loud\n")).toMatch(/log-level: expected debug, info, warn or error, got "loud"/);
    expect(bad("source: gazebo\n")).toMatch(/source: expected sim or ros2, got "gazebo"/);
    expect(bad("profile: px5\n")).toMatch(/profile: expected default or mavros/);
    expect(bad("mavros:\n  autopilot: betaflight\n")).toMatch(/mavros\.autopilot: expected px4 or ardupilot/);
    expect(bad("drones:\n  - id: uav1\n    topics:\n      gps: /x\n")).toMatch(/drones\[0\]\.topics: unknown topic "gps"/);
    expect(bad("edge: [1, 2]\n")).toMatch(/edge: expected a URL/);
    expect(bad("token_file: /a\ntoken-file: /b\n")).toMatch(/"token-file" and "token_file" are the same setting/);
    expect(bad("edge: http://x\n  bad indent: [\n")).toMatch(/is not valid YAML/);
    expect(bad("- just\n- a list\n")).toMatch(/must hold a mapping/);
  });

  it("names the environment variable or the flag when the bad value came from there", () => {
    expect(errorOf(parseRelayArgs(BASE, deps({ RELAY_OUTBOX_MAX_BYTES: "abc" })))).toMatch(/^RELAY_OUTBOX_MAX_BYTES: expected a positive number of bytes/);
    expect(errorOf(parseRelayArgs(BASE, deps({ RELAY_LOG_LEVEL: "loud" })))).toBe('RELAY_LOG_LEVEL: expected debug, info, warn or error, got "loud"');
    expect(errorOf(parseRelayArgs(BASE, deps({ RELAY_HEALTH_PORT: "-1" })))).toMatch(/^RELAY_HEALTH_PORT: expected a port/);
    expect(errorOf(parseRelayArgs([...BASE, "--health-port", "http"], deps()))).toMatch(/^--health-port: expected a port/);
    expect(errorOf(parseRelayArgs([...BASE, "--outbox-max-bytes", "12"], deps()))).toMatch(/^--outbox-max-bytes: .*at least 64KiB, got 12/);
    const noToken = ["--edge", "http://127.0.0.1:8787", "--fleet", "demo", "--source", "sim"];
    expect(errorOf(parseRelayArgs(noToken, deps({ RELAY_TOKEN: "a", RELAY_TOKEN_FILE: "/tok" })))).toBe("give either RELAY_TOKEN or RELAY_TOKEN_FILE, not both");
    // A flag decides before the environment is looked at.
    expect(ok(parseRelayArgs(BASE, deps({ RELAY_TOKEN: "a", RELAY_TOKEN_FILE: "/tok" }))).token).toBe("t0k");
  });
});

describe("environment overrides", () => {
  it("override the file, and flags override both", () => {
    const env = { RELAY_TOKEN_FILE: "/tok2", RELAY_LOG_LEVEL: "debug", RELAY_OUTBOX_DIR: "/data/outbox", RELAY_HEALTH_PORT: "off", RELAY_PROFILE: "default", RELAY_FLEET: "south" };
    files["/tok2"] = "env-token\n";
    const cfg = ok(parseRelayArgs(["--config", "/relay.yaml", "--fleet", "east"], deps(env)));
    expect(cfg).toMatchObject({
      fleet: "east",
      token: "env-token",
      tokenFrom: { kind: "file", path: "/tok2" },
      logLevel: "debug",
      outbox: { dir: "/data/outbox", maxBytes: 64 * 1024 * 1024 },
      health: { enabled: false },
      profile: "default",
    });
  });

  it("RELAY_CONFIG names the file; RELAY_EDGE/RELAY_SOURCE/RELAY_DRONE_IDS/RELAY_RATE/RELAY_ID fill in", () => {
    files["/min.yaml"] = "fleet: demo\ntoken_file: /tok\n";
    const cfg = ok(
      parseRelayArgs([], deps({ RELAY_CONFIG: "/min.yaml", RELAY_EDGE: "wss://e.example", RELAY_SOURCE: "ros2", RELAY_DRONE_IDS: "a, b,c", RELAY_RATE: "2", RELAY_ID: "gs-7" })),
    );
    expect(cfg).toMatchObject({ edge: "wss://e.example", source: "ros2", droneIds: ["a", "b", "c"], rateHz: 2, relayId: "gs-7", configFile: "/min.yaml" });
  });

  it("defaults: health on 127.0.0.1:9464, outbox under systemd's STATE_DIRECTORY, else in memory", () => {
    expect(ok(parseRelayArgs(BASE, deps()))).toMatchObject({ outbox: { dir: null, maxBytes: 256 * 1024 * 1024, fsyncMs: 200 }, health: { enabled: true, host: "127.0.0.1", port: 9464, graceMs: 30_000 } });
    expect(ok(parseRelayArgs(BASE, deps({ STATE_DIRECTORY: "/var/lib/dronefleet-relay" }))).outbox.dir).toBe("/var/lib/dronefleet-relay/outbox");
    expect(ok(parseRelayArgs([...BASE, "--outbox-dir", "memory"], deps({ STATE_DIRECTORY: "/var/lib/x" }))).outbox.dir).toBeNull();
    expect(ok(parseRelayArgs([...BASE, "--health-port", "0"], deps())).health).toMatchObject({ enabled: true, port: 0 });
  });
});

describe("--print-config", () => {
  it("shows the effective configuration as a config file, never the token", () => {
    const r = parseRelayArgs(["--config", "/relay.yaml", "--print-config"], deps());
    expect(r.kind).toBe("print-config");
    const text = formatConfig(ok(r));
    expect(text).not.toContain("file-token");
    const doc = parseYaml(text) as Record<string, unknown>;
    expect(doc).toMatchObject({ token_file: "/tok", fleet: "north", profile: "mavros", drones: ["uav1", { id: "uav2" }] });
    expect((doc.topics as Record<string, string>).state).toBe("/{drone}/mavros/state");
    expect(doc.qos).toEqual({ fix: "sensor_data", battery: "sensor_data", velocity: "sensor_data", state: "sensor_data" });
    // What it prints is itself a valid config file.
    files["/printed.yaml"] = text;
    expect(ok(parseRelayArgs(["--config", "/printed.yaml"], deps())).perDrone).toEqual(ok(r).perDrone);

    const inline = formatConfig(ok(parseRelayArgs([...BASE, "--print-config"], deps())));
    expect(inline).not.toContain("t0k");
    expect(inline).toContain("token: <redacted, from flag>");
  });

  it("the CLI prints it and exits 0, with the token masked", async () => {
    const ROOT = fileURLToPath(new URL("../..", import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), "relay-config-"));
    try {
      writeFileSync(join(dir, "relay.yaml"), "edge: http://127.0.0.1:1\nfleet: demo\nsource: sim\ndrones: 3\n");
      const child = spawn(process.execPath, [join(ROOT, "node_modules/tsx/dist/cli.mjs"), "relay/cli.ts", "--config", join(dir, "relay.yaml"), "--print-config"], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", HOME: dir, RELAY_TOKEN: "super-secret-token-value" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      expect(code).toBe(0);
      expect(out).not.toContain("super-secret-token-value");
      expect(parseYaml(out)).toMatchObject({ token: "<redacted, from env>", drones: 3, source: "sim" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

afterAll(() => {
  for (const k of Object.keys(files)) delete files[k];
});
