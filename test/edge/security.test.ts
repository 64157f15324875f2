/**
 * Security cases at the edge, in workerd: token forgeries not covered by auth.test.ts, role
 * escalation over HTTP and over both kinds of socket, tokens never in logs, the Origin allowlist,
 * connection and message limits per token, and oversized request bodies.
 */
import { env, SELF } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { signToken } from "../../edge/worker/auth";
import { app } from "../../edge/worker/index";
import { DASHBOARD_MESSAGES, MessageLimiter, socketsPerToken } from "../../edge/fleet/limits";
import { MAX_BODY_BYTES, originAllowed } from "../../edge/worker/limits";
import { connect, ManualClock, relay, sample, SECRET, sendBatch, stubFor, token, uniqueFleet, useClock, TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  vi.restoreAllMocks();
});

const b64 = (o: unknown) => btoa(JSON.stringify(o)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const now = () => Math.floor(Date.now() / 1000);

async function status(path: string, init: RequestInit = {}) {
  const res = await SELF.fetch(`https://edge.test${path}`, init);
  const text = await res.text();
  let body: { error?: { code: string; message: string } } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // A 101 or an empty body.
  }
  return { status: res.status, code: body.error?.code, message: body.error?.message, res };
}
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

async function dash(fleet: string, role: "viewer" | "operator" | "admin", sub?: string) {
  const d = await connect(fleet, "ws", await token(role, [fleet], sub ? { sub } : {}));
  open.push(d);
  await d.nextOfType("fleet_status");
  return d;
}

describe("token forgeries", () => {
  const fleet = uniqueFleet("sec");

  it("refuses every forged, stale or incomplete token with 401 and a reason", async () => {
    const good = await token("viewer", [fleet]);
    const [h, p, sig] = good.split(".") as [string, string, string];
    const claims = JSON.parse(atob(p.replace(/-/g, "+").replace(/_/g, "/"))) as Record<string, unknown>;
    const cases: [string, string, RegExp][] = [
      ["escalated role, original signature", `${h}.${b64({ ...claims, role: "admin" })}.${sig}`, /signature/],
      ["extra fleet, original signature", `${h}.${b64({ ...claims, fleets: "*" })}.${sig}`, /signature/],
      ["alg HS512", `${b64({ alg: "HS512", typ: "JWT" })}.${p}.${sig}`, /HS256/],
      ["alg RS256", `${b64({ alg: "RS256", typ: "JWT" })}.${p}.${sig}`, /HS256/],
      ["alg None", `${b64({ alg: "None" })}.${p}.`, /HS256/],
      ["no alg", `${b64({ typ: "JWT" })}.${p}.${sig}`, /HS256/],
      ["empty signature", `${h}.${p}.`, /signature/],
      ["not yet valid", await signToken(SECRET, { sub: "a", role: "viewer", fleets: [fleet], nbf: now() + 600 } as never), /not yet valid/],
      ["expired beyond the leeway", await signToken(SECRET, { sub: "a", role: "viewer", fleets: [fleet], exp: now() - 60 }), /expired/],
      ["no exp", await signToken(SECRET, { sub: "a", role: "viewer", fleets: [fleet], exp: "never" } as never), /claims/],
      ["no sub", await signToken(SECRET, { role: "viewer", fleets: [fleet] } as never), /claims/],
      ["unknown role", await signToken(SECRET, { sub: "a", role: "superuser", fleets: [fleet] } as never), /claims/],
      ["no fleets", await signToken(SECRET, { sub: "a", role: "viewer" } as never), /claims/],
      ["fleets as a string other than *", await signToken(SECRET, { sub: "a", role: "viewer", fleets: fleet } as never), /claims/],
      ["signed with another key", await token("admin", "*", { secret: "not-the-edge-secret" }), /signature/],
    ];
    for (const [what, tok, reason] of cases) {
      const r = await status(`/v1/fleets/${fleet}/status`, { headers: bearer(tok) });
      expect(r.status, what).toBe(401);
      expect(r.code, what).toBe("unauthorized");
      expect(r.message, what).toMatch(reason);
    }
  });

  it("accepts a token just expired within the 30 s clock-skew leeway", async () => {
    const tok = await signToken(SECRET, { sub: "a", role: "viewer", fleets: [fleet], exp: now() - 5 });
    expect((await status(`/v1/fleets/${fleet}/status`, { headers: bearer(tok) })).status).toBe(200);
  });

  it("answers 403 when the fleet list does not include the fleet (no prefix or empty-list tricks)", async () => {
    for (const fleets of [[], [`${fleet}-other`], [fleet.slice(0, -1)], ["*x"]]) {
      const r = await status(`/v1/fleets/${fleet}/status`, { headers: bearer(await token("admin", fleets)) });
      expect(r.status, JSON.stringify(fleets)).toBe(403);
      expect(r.code).toBe("forbidden");
    }
  });

  it("uses the Authorization header over ?access_token= (a good query token does not rescue a bad header)", async () => {
    const good = await token("viewer", [fleet]);
    const r = await status(`/v1/fleets/${fleet}/status?access_token=${good}`, { headers: { Authorization: "Bearer forged.token.here" } });
    expect(r.status).toBe(401);
    expect((await status(`/v1/fleets/${fleet}/status`, { headers: { Authorization: `Basic ${good}` } })).status).toBe(401);
  });
});

describe("role escalation", () => {
  it("keeps PUT /config for admins, whatever identity headers a client adds", async () => {
    const fleet = uniqueFleet("sec");
    const body = JSON.stringify({ max_commands_per_10s: 7 });
    for (const role of ["viewer", "operator", "relay"] as const) {
      const tok = await token(role, [fleet]);
      const r = await status(`/v1/fleets/${fleet}/config`, {
        method: "PUT",
        headers: { ...bearer(tok), "content-type": "application/json", "x-df-role": "admin", "x-df-sub": "root", "x-df-fleet": fleet },
        body,
      });
      expect(r.status, role).toBe(403);
      expect(r.code, role).toBe("forbidden");
    }
    const cfg = await stubFor(fleet).getConfig();
    expect(cfg.max_commands_per_10s).toBe(20);
    const ok = await status(`/v1/fleets/${fleet}/config`, { method: "PUT", headers: { ...bearer(await token("admin", [fleet])), "content-type": "application/json" }, body });
    expect(ok.status).toBe(200);
  });

  it("keeps relays off the dashboard REST routes and dashboards off /relay", async () => {
    const fleet = uniqueFleet("sec");
    const relayTok = await token("relay", [fleet]);
    for (const path of ["commands", "missions", "coordination"]) {
      const r = await status(`/v1/fleets/${fleet}/${path}`, { headers: bearer(relayTok) });
      expect(r.status, path).toBe(403);
      expect(r.code).toBe("forbidden");
    }
  });

  it("answers a viewer's commands with forbidden and sends nothing to the relay", async () => {
    const fleet = uniqueFleet("sec");
    const { r } = await relay(fleet, ["d1"]);
    open.push(r);
    await sendBatch(r, [sample("d1")]);
    const v = await dash(fleet, "viewer");
    const wp = { lat: 47.3978, lon: 8.5457, alt_m: 40 };
    const msgs = [
      { type: "modify_waypoint", command_id: "viewer-cmd-1", drone_id: "d1", new_waypoint: wp },
      { type: "emergency_land", command_id: "viewer-cmd-2", drone_id: "d1" },
      { type: "assign_mission", command_id: "viewer-cmd-3", mission: { waypoints: [wp] } },
      { type: "coordination_override", command_id: "viewer-cmd-4", event_id: "ev-x", action: "dismiss" },
    ];
    for (const m of msgs) {
      v.send(m);
      const answer = await v.next((f) => f.command_id === m.command_id && String(f.type).endsWith("_response"));
      expect(answer, m.type).toMatchObject({ success: false, status: "rejected", code: "forbidden" });
    }
    expect((await r.barrier()).filter((f) => f.type === "command")).toEqual([]);
  });

  it("answers dashboard frames on a relay socket with forbidden and records nothing", async () => {
    const fleet = uniqueFleet("sec");
    const { r } = await relay(fleet, ["d1"]);
    open.push(r);
    await sendBatch(r, [sample("d1")]);
    const frames = [
      { type: "modify_waypoint", command_id: "relay-cmd-1", drone_id: "d1", new_waypoint: { lat: 47.3978, lon: 8.5457, alt_m: 40 } },
      { type: "emergency_land", command_id: "relay-cmd-2", drone_id: "d1" },
      { type: "coordination_override", command_id: "relay-cmd-3", event_id: "e", action: "dismiss" },
      { type: "subscribe_telemetry", drone_ids: "all", request_id: "s1" },
    ];
    for (const f of frames) {
      r.send(f);
      expect(await r.nextOfType("error"), f.type).toMatchObject({ code: "forbidden" });
    }
    expect(await stubFor(fleet).listCommands(100)).toEqual([]);
  });

  it("refuses relay frames from any dashboard, an admin's included: a forged result does not finish a command", async () => {
    const fleet = uniqueFleet("sec");
    const { r } = await relay(fleet, ["d1"]);
    open.push(r);
    await sendBatch(r, [sample("d1", { lat: 47.3977, lon: 8.5456 })]);
    const op = await dash(fleet, "operator");
    const admin = await dash(fleet, "admin");
    op.send({ type: "modify_waypoint", command_id: "forge-target-1", drone_id: "d1", new_waypoint: { lat: 47.3979, lon: 8.5458, alt_m: 40 } });
    const cmd = await r.nextOfType("command");
    expect(cmd.command_id).toBe("forge-target-1");
    for (const f of [
      { type: "command_result", command_id: "forge-target-1", status: "acked" },
      { type: "telemetry_batch", batch_id: 1, sent_at: Date.now(), updates: [sample("d1", { battery_pct: 1 })] },
      { type: "relay_hello", relay_id: "evil", source: "sim", drone_ids: ["d1"] },
      { type: "mission_progress", mission_id: "m-x", drone_id: "d1", state: "completed", ts: Date.now() },
    ]) {
      admin.send(f);
      expect(await admin.nextOfType("error"), f.type).toMatchObject({ code: "forbidden" });
    }
    const row = (await stubFor(fleet).listCommands(100)).find((c) => c.command_id === "forge-target-1");
    expect(row?.status).toBe("sent");
    const st = await stubFor(fleet).getStatus();
    expect(st.drones.find((d) => d.drone_id === "d1")?.battery_pct).toBe(80);
    // The real relay's answer still counts.
    r.send({ type: "command_result", command_id: "forge-target-1", status: "acked" });
    expect(await op.next((f) => f.type === "waypoint_modification_response")).toMatchObject({ status: "acked" });
  });
});

describe("tokens never in logs", () => {
  it("logs no token, whatever fails", async () => {
    const logged: string[] = [];
    for (const m of ["log", "info", "warn", "error", "debug"] as const) {
      vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
        logged.push(args.map((a) => (a instanceof Error ? `${a.message} ${a.stack ?? ""}` : typeof a === "string" ? a : JSON.stringify(a))).join(" "));
      });
    }
    const fleet = uniqueFleet("sec");
    const admin = await token("admin", [fleet]);
    const expired = await signToken(SECRET, { sub: "a", role: "admin", fleets: [fleet], exp: now() - 3600 });
    const other = await token("admin", ["elsewhere"]);
    const relayTok = await token("relay", [fleet]);
    await status(`/v1/fleets/${fleet}/status?access_token=${admin}`);
    await status(`/v1/fleets/${fleet}/status`, { headers: bearer(expired) });
    await status(`/v1/fleets/${fleet}/status`, { headers: bearer(other) });
    await status(`/v1/fleets/${fleet}/config`, { method: "PUT", headers: bearer(admin), body: "{broken" });
    await status(`/v1/fleets/${fleet}/config`, { method: "PUT", headers: bearer(admin), body: "x".repeat(MAX_BODY_BYTES + 1) });
    await status(`/v1/fleets/${fleet}/ws?access_token=${relayTok}`, { headers: { Upgrade: "websocket" } });
    await status(`/v1/fleets/${fleet}/analytics/hourly?access_token=${admin}&from=nonsense`);
    const r = await connect(fleet, "relay", relayTok);
    open.push(r);
    r.send({ type: "relay_hello", relay_id: "relay-logs", source: "sim", drone_ids: [] });
    await r.nextOfType("hello_ack");
    r.send("{not json");
    r.send(JSON.stringify({ type: "telemetry_batch", batch_id: 1, sent_at: 0, updates: [{ token: admin }] }));
    await r.nextOfType("error");
    await r.nextOfType("batch_ack");
    // An internal error while a token is in the request (no fleet binding): logged, without it.
    const broken = await app.request(`https://edge.test/v1/fleets/${fleet}/status?access_token=${admin}`, { headers: bearer(admin) }, { AUTH_SECRET: SECRET, ENVIRONMENT: "development" } as never);
    expect(broken.status).toBe(500);
    expect(logged.some((l) => l.includes("edge error"))).toBe(true);
    for (const line of logged) {
      for (const t of [admin, expired, other, relayTok]) {
        expect(line).not.toContain(t);
        expect(line).not.toContain(t.split(".")[2]);
      }
      expect(line).not.toMatch(/authorization|access_token=/i);
    }
  });
});

describe("Origin allowlist for browser sockets", () => {
  const list = "https://ops.example.com, http://localhost:5173";

  it("decides by exact origin; no Origin (relays, scripts) and the edge's own origin always pass", () => {
    const url = "https://edge.example.com/v1/fleets/f/ws";
    expect(originAllowed(null, url, list)).toBe(true);
    expect(originAllowed("https://ops.example.com", url, list)).toBe(true);
    expect(originAllowed("http://localhost:5173", url, list)).toBe(true);
    expect(originAllowed("https://edge.example.com", url, list)).toBe(true);
    for (const bad of ["https://evil.example.com", "https://ops.example.com.evil.io", "http://ops.example.com", "null", "https://localhost:5173"]) {
      expect(originAllowed(bad, url, list), bad).toBe(false);
    }
    expect(originAllowed("https://anything.io", url, "*")).toBe(true);
    expect(originAllowed("https://anything.io", url, undefined)).toBe(true);
  });

  it("refuses a disallowed Origin with 403 before the upgrade, on /ws and /relay", async () => {
    const fleet = uniqueFleet("sec");
    const e = { ...env, ALLOWED_ORIGINS: list };
    const viewer = await token("viewer", [fleet]);
    const up = (tok: string, origin?: string) => ({ headers: { Upgrade: "websocket", ...bearer(tok), ...(origin ? { Origin: origin } : {}) } });
    const evil = await app.request(`https://edge.test/v1/fleets/${fleet}/ws`, up(viewer, "https://evil.example.com"), e);
    expect(evil.status).toBe(403);
    expect(((await evil.json()) as { error: { code: string } }).error.code).toBe("origin_not_allowed");
    const evilRelay = await app.request(`https://edge.test/v1/fleets/${fleet}/relay`, up(await token("relay", [fleet]), "https://evil.example.com"), e);
    expect(evilRelay.status).toBe(403);
    for (const origin of ["https://ops.example.com", "https://edge.test", undefined]) {
      const res = await app.request(`https://edge.test/v1/fleets/${fleet}/ws`, up(viewer, origin), e);
      expect(res.status, String(origin)).toBe(101);
      res.webSocket?.accept();
      res.webSocket?.close(1000, "done");
    }
  });
});

describe("connection and message limits per token", () => {
  it("allows MAX_DASHBOARD_SOCKETS_PER_TOKEN open sockets per token subject, then 429 with a code", async () => {
    const fleet = uniqueFleet("sec");
    const limit = socketsPerToken(env.MAX_DASHBOARD_SOCKETS_PER_TOKEN);
    const tok = await token("viewer", [fleet], { sub: "one-person" });
    const socks: TestSocket[] = [];
    for (let i = 0; i < limit; i++) socks.push(await connect(fleet, "ws", tok));
    open.push(...socks);
    const over = await status(`/v1/fleets/${fleet}/ws`, { headers: { Upgrade: "websocket", ...bearer(tok) } });
    expect(over.status).toBe(429);
    expect(over.code).toBe("too_many_connections");
    // Another subject is not affected; closing one socket frees a place.
    const other = await connect(fleet, "ws", await token("viewer", [fleet], { sub: "someone-else" }));
    open.push(other);
    socks[0]!.close();
    await socks[0]!.waitClosed();
    // The object handles its events in order: once a frame sent after the close is answered, the
    // close has been handled too.
    await other.barrier();
    open.push(await connect(fleet, "ws", tok));
  });

  it("answers a flood with rate_limited errors, then closes the socket with 1008", async () => {
    const fleet = uniqueFleet("sec");
    const d = await dash(fleet, "viewer");
    // The object's clock stands still: no bucket refills while the flood is handled, however long
    // that takes on a loaded machine, so the counts are exact.
    await useClock(fleet, new ManualClock());
    const n = DASHBOARD_MESSAGES.burst + DASHBOARD_MESSAGES.strikes * 3;
    for (let i = 0; i < n && !d.closed; i++) d.send({ type: "ping", request_id: `p${i}` });
    const closed = await d.waitClosed(10_000);
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/rate_limited/);
    const pongs = d.frames.filter((f) => f.type === "pong").length;
    const limited = d.frames.filter((f) => f.type === "error" && f.code === "rate_limited").length;
    expect(pongs).toBe(DASHBOARD_MESSAGES.burst);
    expect(limited).toBe(DASHBOARD_MESSAGES.strikes);
  });

  it("refills: a steady sender below the rate is never limited", () => {
    const lim = new MessageLimiter<object>({ burst: 5, perSecond: 10, strikes: 2, strikesPerSecond: 1 });
    const k = {};
    let t = 0;
    for (let i = 0; i < 100; i++) expect(lim.take(k, (t += 100))).toBe("ok");
    // A quiet second refills the burst; a burst beyond it is limited, then closed.
    t += 1000;
    for (let i = 0; i < 5; i++) expect(lim.take(k, t)).toBe("ok");
    expect(lim.take(k, t)).toBe("limited");
    expect(lim.take(k, t)).toBe("limited");
    expect(lim.take(k, t)).toBe("close");
  });
});

describe("oversized request bodies", () => {
  const big = MAX_BODY_BYTES + 1;

  it("answers 413 body_too_large for a declared Content-Length over the cap", async () => {
    const fleet = uniqueFleet("sec");
    const r = await status(`/v1/fleets/${fleet}/config`, { method: "PUT", headers: { ...bearer(await token("admin", [fleet])), "content-type": "application/json" }, body: "x".repeat(big) });
    expect(r.status).toBe(413);
    expect(r.code).toBe("body_too_large");
  });

  it("answers 413 for a chunked body without Content-Length that turns out too long, on any route", async () => {
    const fleet = uniqueFleet("sec");
    const admin = await token("admin", [fleet]);
    const chunked = () => {
      let sent = 0;
      return new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent >= big) return c.close();
          const chunk = new Uint8Array(Math.min(64 * 1024, big - sent)).fill(32);
          sent += chunk.length;
          c.enqueue(chunk);
        },
      });
    };
    for (const [method, path] of [["PUT", "config"], ["POST", "analytics/hourly/recompute"], ["POST", "status"]] as const) {
      const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/${path}`, { method, headers: bearer(admin), body: chunked() });
      expect(res.status, `${method} ${path}`).toBe(413);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("body_too_large");
    }
  });

  it("passes a small chunked body through to the route intact", async () => {
    const fleet = uniqueFleet("sec");
    const text = JSON.stringify({ max_commands_per_10s: 9 });
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(text.slice(0, 10)));
        c.enqueue(new TextEncoder().encode(text.slice(10)));
        c.close();
      },
    });
    const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/config`, { method: "PUT", headers: { ...bearer(await token("admin", [fleet])), "content-type": "application/json" }, body });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { max_commands_per_10s: number }).max_commands_per_10s).toBe(9);
  });
});
