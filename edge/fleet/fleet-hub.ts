/**
 * FleetHub: one Durable Object per fleet, the single writer of the fleet's live state.
 *
 * - Relay sockets push `telemetry_batch` frames; accepted updates are persisted to SQLite in the
 *   same turn (output gates hold the ack until the write is durable) and fanned out to the
 *   dashboards subscribed to those drones.
 * - Dashboard sockets subscribe per drone. Sockets use the Hibernation API; role and
 *   subscriptions live in the socket attachment so they survive eviction.
 * - A 5 s alarm (never setInterval) broadcasts `fleet_status` and sweeps stale drones.
 */
import { DurableObject } from "cloudflare:workers";
import { IDENTITY_HEADERS, type Env } from "../worker/env";
import { CommandDesk, type HubPorts } from "./command-desk";
import { defaultFleetConfig, parseFleetConfig, type FleetConfig } from "../domain/fleet-config";
import { Coordinator, DETECT_INTERVAL_MS } from "./collision-avoidance";
import type { CoordinationDrone } from "../domain/conflicts";
import { CommandLedger } from "./ledger";
import { LiveState } from "../domain/live-state";
import { MissionStore } from "./missions";
import { FleetAnalytics, type AnalyticsLiveView } from "./analytics";
import { MessageLimiter, socketsPerToken } from "../worker/limits";
import type { FlushResult } from "../postgres/drain";
import {
  LIMITS,
  RELAY_TYPES,
  DASHBOARD_TYPES,
  TelemetrySample,
  parseDashboardMessage,
  parseRelayMessage,
  type BatchAck,
  type DashboardMessage,
  type ErrorCode,
  type ErrorFrame,
  type FleetStatus,
  type LinkStatus,
  type RelayCommand,
  type RelayMessage,
  type ServerMessage,
} from "../protocol";

type DashboardAttachment = {
  kind: "dashboard";
  sub: string;
  role: string;
  /** null: no telemetry; "all": every drone; else the listed drones. */
  subs: "all" | string[] | null;
  batch: boolean;
  connectedAt: number;
};
type RelayAttachment = { kind: "relay"; sub: string; relayId: string | null; connectedAt: number };
type Attachment = DashboardAttachment | RelayAttachment;

/** In-memory view of a socket's attachment, with the subscription as a Set for fast filtering. */
type Conn = { att: Attachment; subSet: Set<string> | null };

const FLEET_STATUS_CHUNK = 1000;
/** Above this many link changes at once, dashboards get one fleet_status instead of link_status frames. */
const LINK_FRAMES_MAX = 20;

/** Frames built once per ingested batch and shared by every dashboard. */
type FanOutCache = { frames: string[] | null; allBatch: string | null };

export class FleetHub extends DurableObject<Env> {
  private readonly live = new LiveState();
  private readonly conns = new Map<WebSocket, Conn>();
  private fleet = "";
  private relayCount = 0;
  private readonly sql: SqlStorage;
  private readonly ledger: CommandLedger;
  private readonly missions: MissionStore;
  private readonly desk: CommandDesk;
  private readonly coordinator: Coordinator;
  /** Analytics hooks: live metrics, alerts, outbox, flush (edge/fleet/analytics.ts). */
  private readonly analytics: FleetAnalytics;
  /** When the next detection pass is due. */
  private detectDueAt: number | null = null;
  /** drone → relay_id of the relay that last reported it (commands go there). */
  private readonly relayOf = new Map<string, string>();
  private config: FleetConfig = defaultFleetConfig();
  /** When the next fleet_status is due; null until the first alarm is set. */
  private statusDueAt: number | null = null;
  /** Abuse limits (edge/worker/limits.ts): messages per dashboard socket. */
  private readonly messageLimiter = new MessageLimiter<WebSocket>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.analytics = new FleetAnalytics(this.sql, env, {
      fleet: () => this.fleet,
      config: () => this.config,
      drones: () => this.live.records(),
      activeMissions: () => this.missions.activeCount(),
      activeCoordinationEvents: () => this.coordinator.activeEvents().length,
      broadcast: (frame) => this.broadcast(frame),
      waitUntil: (p) => this.ctx.waitUntil(p),
    });
    // Analytics hooks: final command states and mission changes go to the outbox.
    this.ledger = new CommandLedger(this.sql, (row) => this.analytics.onCommandFinal(row));
    this.missions = new MissionStore(this.sql, (m, now) => this.analytics.onMission(m, now));
    this.desk = new CommandDesk(this.ports(), this.ledger, this.missions);
    this.coordinator = new Coordinator(this.sql, {
      config: () => this.config,
      drones: () => this.coordinationDrones(Date.now()),
      issue: (commands, eventId) => commands.filter((c) => this.desk.system(c, `coordinator:${eventId}`)).length,
      changed: (event) => {
        this.broadcast({ type: "coordination_event", event });
        this.analytics.onCoordinationEvent(event, Date.now()); // analytics hook: outbox
      },
    });
    ctx.blockConcurrencyWhile(async () => {
      this.migrate();
      this.load();
    });
  }

  /** What the command desk may touch in this object. */
  private ports(): HubPorts {
    return {
      now: () => Date.now(),
      config: () => this.config,
      drone: (id) => this.live.get(id),
      drones: () => this.live.records(),
      relayFor: (droneId) => {
        const relayId = this.relayOf.get(droneId);
        const ws = relayId ? this.relaySocket(relayId) : null;
        if (!relayId || !ws) return null;
        return { relayId, send: (frame: RelayCommand) => this.trySend(ws, JSON.stringify(frame)) };
      },
      reply: (ws, frame) => this.send(ws, frame),
      broadcast: (frame) => this.broadcast(frame),
      deadlineAdded: () => this.ctx.waitUntil(this.scheduleAlarm()),
      override: (eventId, action, by, reason) => this.coordinator.override(eventId, action, by, reason, Date.now()),
    };
  }

  /** Live drones as the collision-avoidance code sees them: position, plan, priority, hold. */
  private coordinationDrones(now: number): CoordinationDrone[] {
    const busy = this.missions.busy();
    const rank: Record<string, number> = { low: 1, normal: 2, high: 3, critical: 4 };
    const out: CoordinationDrone[] = [];
    for (const rec of this.live.records()) {
      if (rec.link !== "live") continue;
      const s = rec.sample;
      const hold = this.coordinator.holdFor(s.drone_id, now);
      out.push({
        drone_id: s.drone_id,
        lat: s.lat,
        lon: s.lon,
        alt_m: s.alt_m,
        heading_deg: s.heading_deg,
        speed_mps: s.speed_mps,
        ...(s.climb_mps !== undefined ? { climb_mps: s.climb_mps } : {}),
        status: s.status,
        armed: s.armed,
        path: this.missions.plan(s.drone_id),
        priority: rank[busy.get(s.drone_id) ?? ""] ?? 0,
        ...(hold !== undefined ? { hold_s: hold } : {}),
      });
    }
    return out;
  }

  /** Whether any live drone is in the air (detection runs only then). */
  private anyAirborne(): boolean {
    for (const rec of this.live.records()) {
      if (rec.link === "live" && rec.sample.armed && rec.sample.status !== "landed" && rec.sample.status !== "idle" && rec.sample.status !== "charging") return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ analytics RPC (cron, REST)

  /** Drain this fleet's outbox into Postgres (the cron trigger and the recompute route call it). */
  async flushOutbox(fleet?: string): Promise<FlushResult> {
    this.rememberFleet(fleet ?? null);
    return this.analytics.flush();
  }

  /** GET /analytics/live: the live metrics now, active alerts and the outbox's state. */
  async analyticsLive(fleet?: string): Promise<AnalyticsLiveView> {
    this.rememberFleet(fleet ?? null);
    return this.analytics.liveView(Date.now());
  }

  // ------------------------------------------------------------------ lifecycle entry points

  override async fetch(req: Request): Promise<Response> {
    try {
      this.rememberFleet(req.headers.get(IDENTITY_HEADERS.fleet));
      const path = new URL(req.url).pathname;
      switch (path) {
        case "/status":
          return Response.json(this.statusSnapshot());
        case "/config":
          return req.method === "PUT" ? this.putConfig(req) : Response.json(this.config);
        case "/commands": {
          const q = new URL(req.url).searchParams;
          const limit = Math.min(Math.max(Number(q.get("limit") ?? 100) || 100, 1), 1000);
          const before = q.get("before") ? Number(q.get("before")) : undefined;
          return Response.json({ commands: this.ledger.list(limit, before) });
        }
        case "/coordination": {
          const limit = Math.min(Math.max(Number(new URL(req.url).searchParams.get("limit") ?? 100) || 100, 1), 1000);
          return Response.json({ events: this.coordinator.list(limit), last_pass: this.coordinator.lastPass });
        }
        case "/missions": {
          const limit = Math.min(Math.max(Number(new URL(req.url).searchParams.get("limit") ?? 100) || 100, 1), 1000);
          return Response.json({ missions: this.missions.list(limit) });
        }
        case "/ws":
          return this.acceptDashboard(req);
        case "/relay":
          return this.acceptRelay(req);
        default: {
          const m = /^\/coordination\/([A-Za-z0-9_-]{1,64})$/.exec(path);
          if (m) {
            const r = this.coordinator.replay(m[1]!);
            return r
              ? Response.json(r)
              : Response.json({ error: { code: "unknown_event", message: `no coordination event ${m[1]}` } }, { status: 404 });
          }
          return Response.json({ error: { code: "not_found", message: `no route ${path}` } }, { status: 404 });
        }
      }
    } catch (err) {
      console.error(`FleetHub(${this.fleet}) fetch failed`, err);
      return Response.json({ error: { code: "internal", message: "fleet object error" } }, { status: 500 });
    }
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const conn = this.conn(ws);
    if (!conn) {
      ws.close(1011, "unknown socket");
      return;
    }
    try {
      if (conn.att.kind === "relay") this.onRelayFrame(ws, conn.att, message);
      else this.onDashboardFrame(ws, conn, message);
    } catch (err) {
      // A bug must not take the object or the socket down: answer in-band and go on.
      console.error(`FleetHub(${this.fleet}) message handler failed`, err);
      this.send(ws, { type: "error", code: "internal", message: "internal error handling the frame" });
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, _reason: string, _wasClean: boolean): Promise<void> {
    this.dropSocket(ws);
    try {
      // Complete the close handshake; the socket may already be closed.
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closed");
    } catch {
      /* already closed: nothing to complete */
    }
  }

  override async webSocketError(ws: WebSocket, err: unknown): Promise<void> {
    console.warn(`FleetHub(${this.fleet}) socket error`, err);
    this.dropSocket(ws);
  }

  override async alarm(): Promise<void> {
    try {
      const now = Date.now();
      this.desk.expire(now);
      // Each clock runs when due; an alarm set for a command deadline does not run the others early.
      const due = (at: number | null) => at === null || now >= at - 20;
      if (due(this.detectDueAt) && this.anyAirborne()) {
        this.coordinator.pass(now);
        this.detectDueAt = now + DETECT_INTERVAL_MS;
      }
      if (due(this.statusDueAt)) {
        const stale = this.live.sweepStale(now).map((rec) => ({ id: rec.sample.drone_id, state: "stale" as const, lastSeen: rec.receivedAt }));
        // The status below carries every drone's link anyway; per-drone frames only when few changed.
        if (stale.length <= LINK_FRAMES_MAX) this.announceLinks(stale, now);
        this.broadcastStatus(now);
        this.statusDueAt = now + LIMITS.statusIntervalMs;
        this.analytics.tick(now); // analytics hook: analytics_live, alerts, performance_metrics
      }
    } catch (err) {
      console.error(`FleetHub(${this.fleet}) alarm failed`, err);
    } finally {
      await this.scheduleAlarm();
    }
  }

  // ------------------------------------------------------------------ sockets

  private acceptDashboard(req: Request): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ error: { code: "upgrade_required", message: "expected a WebSocket upgrade" } }, { status: 426 });
    }
    const sub = req.headers.get(IDENTITY_HEADERS.sub) ?? "unknown";
    const limit = this.tooManySockets(sub);
    if (limit !== null) {
      return Response.json({ error: { code: "too_many_connections", message: `at most ${limit} dashboard sockets per token subject in a fleet` } }, { status: 429 });
    }
    const pair = new WebSocketPair();
    const server = pair[1];
    const att: DashboardAttachment = {
      kind: "dashboard",
      sub,
      role: req.headers.get(IDENTITY_HEADERS.role) ?? "viewer",
      subs: null,
      batch: false,
      connectedAt: Date.now(),
    };
    this.ctx.acceptWebSocket(server, ["dashboard"]);
    server.serializeAttachment(att);
    this.conns.set(server, { att, subSet: null });
    this.sendStatus(server, Date.now());
    this.ctx.waitUntil(this.scheduleAlarm());
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  private acceptRelay(req: Request): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ error: { code: "upgrade_required", message: "expected a WebSocket upgrade" } }, { status: 426 });
    }
    const pair = new WebSocketPair();
    const server = pair[1];
    const att: RelayAttachment = {
      kind: "relay",
      sub: req.headers.get(IDENTITY_HEADERS.sub) ?? "unknown",
      relayId: null,
      connectedAt: Date.now(),
    };
    this.ctx.acceptWebSocket(server, ["relay"]);
    server.serializeAttachment(att);
    this.conns.set(server, { att, subSet: null });
    this.relayCount = this.ctx.getWebSockets("relay").length;
    this.broadcastRelayLink("up");
    this.ctx.waitUntil(this.scheduleAlarm());
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  private dropSocket(ws: WebSocket): void {
    const conn = this.conn(ws);
    this.conns.delete(ws);
    this.desk.forget(ws);
    if (conn?.att.kind === "relay") {
      // getWebSockets() may still list the closing socket; count the others.
      this.relayCount = this.ctx.getWebSockets("relay").filter((s) => s !== ws && s.readyState === WebSocket.OPEN).length;
      if (this.relayCount === 0) this.broadcastRelayLink("down");
    }
  }

  /** The limit when `sub` already holds MAX_DASHBOARD_SOCKETS_PER_TOKEN open dashboard sockets here. */
  private tooManySockets(sub: string): number | null {
    const limit = socketsPerToken(this.env.MAX_DASHBOARD_SOCKETS_PER_TOKEN);
    let n = 0;
    for (const ws of this.ctx.getWebSockets("dashboard")) {
      const c = this.conn(ws);
      if (c?.att.sub === sub && ws.readyState === WebSocket.OPEN && ++n >= limit) return limit;
    }
    return null;
  }

  /** The socket's state, rebuilt from its attachment after the object woke from hibernation. */
  private conn(ws: WebSocket): Conn | undefined {
    let c = this.conns.get(ws);
    if (!c) {
      const att = ws.deserializeAttachment() as Attachment | null;
      if (!att) return undefined;
      c = { att, subSet: att.kind === "dashboard" && Array.isArray(att.subs) ? new Set(att.subs) : null };
      this.conns.set(ws, c);
    }
    return c;
  }

  // ------------------------------------------------------------------ dashboard frames

  private onDashboardFrame(ws: WebSocket, conn: Conn, message: string | ArrayBuffer): void {
    const verdict = this.messageLimiter.take(ws, Date.now());
    if (verdict !== "ok") {
      if (verdict === "close") {
        ws.close(1008, "rate_limited: too many messages");
        this.dropSocket(ws);
      } else {
        this.send(ws, { type: "error", code: "rate_limited", message: "too many messages on this socket; slow down or it will be closed" });
      }
      return;
    }
    if (typeof message !== "string") {
      this.send(ws, { type: "error", code: "binary_not_supported", message: "send JSON text frames" });
      return;
    }
    if (message.length > LIMITS.dashboardFrameBytes / 3 && new TextEncoder().encode(message).length > LIMITS.dashboardFrameBytes) {
      ws.close(1009, `frame larger than ${LIMITS.dashboardFrameBytes} bytes`);
      this.dropSocket(ws);
      return;
    }
    const parsed = parseDashboardMessage(message);
    if (!parsed.ok) {
      this.send(ws, this.refineTypeError(parsed.error, RELAY_TYPES, "relay"));
      return;
    }
    this.handleDashboard(ws, conn, parsed.value);
  }

  private handleDashboard(ws: WebSocket, conn: Conn, msg: DashboardMessage): void {
    const att = conn.att as DashboardAttachment;
    switch (msg.type) {
      case "subscribe_telemetry": {
        // Replaces the subscription: idempotent, so a client that reconnects simply sends it again.
        att.subs = msg.drone_ids === "all" ? "all" : [...new Set(msg.drone_ids)];
        conn.subSet = att.subs === "all" ? null : new Set(att.subs);
        if (msg.batch !== undefined) att.batch = msg.batch;
        ws.serializeAttachment(att);
        this.send(ws, { type: "subscribed", request_id: msg.request_id, drone_ids: att.subs, batch: att.batch });
        // The latest state of every subscribed drone, so the view is complete at once.
        const ids = att.subs === "all" ? [...this.live.ids()] : att.subs;
        const current = ids.flatMap((id) => {
          const rec = this.live.get(id);
          return rec ? [rec.sample] : [];
        });
        if (current.length) this.fanOutTo(ws, conn, current);
        return;
      }
      case "unsubscribe_telemetry": {
        if (msg.drone_ids === undefined || msg.drone_ids === "all") {
          att.subs = null;
        } else {
          // From "all", removing some drones leaves an explicit list of the others known now.
          const next = new Set(att.subs === "all" ? this.live.ids() : (att.subs ?? []));
          for (const id of msg.drone_ids) next.delete(id);
          att.subs = next.size ? [...next] : null;
        }
        conn.subSet = Array.isArray(att.subs) ? new Set(att.subs) : null;
        ws.serializeAttachment(att);
        this.send(ws, { type: "subscribed", request_id: msg.request_id, drone_ids: att.subs ?? [], batch: att.batch });
        return;
      }
      case "ping":
        this.send(ws, { type: "pong", request_id: msg.request_id, ts: Date.now() });
        return;
      case "modify_waypoint":
      case "assign_mission":
      case "emergency_land":
      case "coordination_override":
        this.desk.handle({ ws, sub: att.sub, role: att.role }, msg);
        return;
      default: {
        const never: never = msg;
        throw new Error(`unhandled dashboard message ${JSON.stringify(never)}`);
      }
    }
  }

  // ------------------------------------------------------------------ relay frames

  private onRelayFrame(ws: WebSocket, att: RelayAttachment, message: string | ArrayBuffer): void {
    if (typeof message !== "string") {
      this.send(ws, { type: "error", code: "binary_not_supported", message: "send JSON text frames" });
      return;
    }
    if (message.length > LIMITS.relayFrameBytes) {
      ws.close(1009, `frame larger than ${LIMITS.relayFrameBytes} bytes`);
      this.dropSocket(ws);
      return;
    }
    const parsed = parseRelayMessage(message);
    if (!parsed.ok) {
      this.send(ws, this.refineTypeError(parsed.error, DASHBOARD_TYPES, "dashboard"));
      return;
    }
    this.handleRelay(ws, att, parsed.value);
  }

  private handleRelay(ws: WebSocket, att: RelayAttachment, msg: RelayMessage): void {
    switch (msg.type) {
      case "relay_hello": {
        att.relayId = msg.relay_id;
        ws.serializeAttachment(att);
        // A relay that reconnects before its old socket timed out replaces it.
        for (const other of this.ctx.getWebSockets("relay")) {
          if (other === ws) continue;
          const o = this.conn(other);
          if (o?.att.kind === "relay" && o.att.relayId === msg.relay_id) {
            try {
              other.close(4000, "replaced by a newer connection of the same relay");
            } catch {
              /* already closing */
            }
            this.conns.delete(other);
          }
        }
        this.send(ws, { type: "hello_ack", fleet: this.fleet, last_seq: this.live.lastSeq() });
        return;
      }
      case "telemetry_batch":
        this.send(ws, this.ingest(att, msg.batch_id, msg.updates));
        return;
      case "command_result":
        // Acknowledge even a late or repeated result so the relay can drop it from its outbox.
        this.desk.onResult(msg.command_id, msg.status, msg.message);
        this.send(ws, { type: "command_result_ack", command_id: msg.command_id });
        return;
      case "mission_progress": {
        const m = this.missions.transition(msg.mission_id, msg.state, Date.now(), { waypointIndex: msg.waypoint_index, message: msg.message });
        if (m) {
          this.broadcast({
            type: "mission_update",
            drone_id: msg.drone_id,
            update: { type: "mission_status", drone_id: msg.drone_id, mission_id: msg.mission_id, status: m.status, timestamp: new Date(msg.ts).toISOString(), ...(msg.message ? { message: msg.message } : {}) },
          });
        }
        return;
      }
      case "ping":
        this.send(ws, { type: "pong", request_id: msg.request_id, ts: Date.now() });
        return;
      default: {
        const never: never = msg;
        throw new Error(`unhandled relay message ${JSON.stringify(never)}`);
      }
    }
  }

  /** Validate item by item, persist and fan out what is new; report the rest. */
  private ingest(att: RelayAttachment, batchId: number, updates: unknown[]): BatchAck {
    const now = Date.now();
    const ack: BatchAck = { type: "batch_ack", batch_id: batchId, accepted: 0, duplicates: 0, rejected: 0, errors: [] };
    const accepted: TelemetrySample[] = [];
    const backLive: string[] = [];
    const reject = (index: number, code: ErrorCode, message: string) => {
      ack.rejected++;
      if (ack.errors.length < 10) ack.errors.push({ index, code, message });
    };
    for (let i = 0; i < updates.length; i++) {
      const r = TelemetrySample.safeParse(updates[i]);
      if (!r.success) {
        reject(i, "invalid_item", r.error.issues.slice(0, 2).map((x) => `${x.path.join(".")}: ${x.message}`).join("; "));
        continue;
      }
      const { outcome, becameLive } = this.live.ingest(r.data, now);
      if (outcome === "duplicate") ack.duplicates++;
      else if (outcome === "too_many_drones") reject(i, "too_many_drones", `fleet is limited to ${LIMITS.dronesPerFleet} drones`);
      else {
        ack.accepted++;
        accepted.push(r.data);
        this.coordinator.recordTrack(r.data.drone_id, { t: now, lat: r.data.lat, lon: r.data.lon, alt_m: r.data.alt_m });
        if (becameLive) backLive.push(r.data.drone_id);
      }
    }
    this.announceLinks(backLive.map((id) => ({ id, state: "live" as const, lastSeen: now })), now);
    if (accepted.length) {
      // Fan out before writing: the output gate holds messages sent after a storage write until
      // the write is durable, and live telemetry should not wait for that. The relay's
      // batch_ack is sent after the write, so the relay only forgets what is durable here.
      this.fanOut(accepted);
      this.persist(accepted, now, att.relayId ?? att.sub);
      this.analytics.onTelemetry(accepted, now); // analytics hook: snapshots, charging sessions
      if (this.detectDueAt === null) this.ctx.waitUntil(this.scheduleAlarm());
    }
    return ack;
  }

  /**
   * One statement per relay frame, not per update: the samples go in as one JSON array and
   * SQLite unpacks it. Per-statement cost dominated ingest when each update had its own upsert.
   * Samples of one drone arrive in rising seq order, so the last row for a drone wins.
   */
  private persist(samples: TelemetrySample[], now: number, relayId: string): void {
    for (const s of samples) this.relayOf.set(s.drone_id, relayId);
    this.sql.exec(
      `INSERT INTO drones (drone_id, seq, received_at, sample, relay_id)
       SELECT json_extract(value, '$.drone_id'), json_extract(value, '$.seq'), ?, value, ? FROM json_each(?) WHERE true
       ON CONFLICT (drone_id) DO UPDATE SET seq = excluded.seq, received_at = excluded.received_at, sample = excluded.sample, relay_id = excluded.relay_id`,
      now,
      relayId,
      JSON.stringify(samples),
    );
  }

  /** The open socket of a relay by its relay_id. */
  private relaySocket(relayId: string): WebSocket | null {
    for (const ws of this.ctx.getWebSockets("relay")) {
      const c = this.conn(ws);
      if (c?.att.kind === "relay" && c.att.relayId === relayId && ws.readyState === WebSocket.OPEN) return ws;
    }
    return null;
  }

  private async putConfig(req: Request): Promise<Response> {
    if (req.headers.get(IDENTITY_HEADERS.role) !== "admin") {
      return Response.json({ error: { code: "forbidden", message: "only admin may change the fleet configuration" } }, { status: 403 });
    }
    let body: unknown;
    try {
      body = await req.json();
    } catch {
      return Response.json({ error: { code: "bad_json", message: "body is not valid JSON" } }, { status: 400 });
    }
    const parsed = parseFleetConfig(body);
    if (!parsed.ok) {
      return Response.json({ error: { code: "invalid_config", message: parsed.errors.join("; "), errors: parsed.errors } }, { status: 400 });
    }
    const next = { ...parsed.config, version: this.config.version + 1 };
    this.sql.exec(
      `INSERT INTO config (id, version, body, updated_at, updated_by) VALUES (1, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET version = excluded.version, body = excluded.body, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      next.version,
      JSON.stringify(next),
      Date.now(),
      req.headers.get(IDENTITY_HEADERS.sub) ?? "unknown",
    );
    this.config = next;
    return Response.json(next);
  }

  /** Each update is serialised once, however many dashboards receive it. */
  private fanOut(samples: TelemetrySample[]): void {
    const cache: FanOutCache = { frames: null, allBatch: null };
    for (const ws of this.ctx.getWebSockets("dashboard")) {
      const conn = this.conn(ws);
      if (conn) this.fanOutTo(ws, conn, samples, cache);
    }
  }

  private fanOutTo(ws: WebSocket, conn: Conn, samples: TelemetrySample[], cache: FanOutCache = { frames: null, allBatch: null }): void {
    const att = conn.att;
    if (att.kind !== "dashboard" || att.subs === null) return;
    const wanted = (s: TelemetrySample) => att.subs === "all" || conn.subSet!.has(s.drone_id);
    if (att.batch) {
      if (att.subs === "all") {
        cache.allBatch ??= JSON.stringify({ type: "telemetry_batch", updates: samples });
        this.sendRaw(ws, cache.allBatch);
      } else {
        const mine = samples.filter(wanted);
        if (mine.length) this.sendRaw(ws, JSON.stringify({ type: "telemetry_batch", updates: mine }));
      }
      return;
    }
    const frames = (cache.frames ??= samples.map((s) => JSON.stringify({ type: "telemetry", ...s })));
    for (let i = 0; i < samples.length; i++) if (wanted(samples[i]!)) this.sendRaw(ws, frames[i]!);
  }

  // ------------------------------------------------------------------ status and alarms

  private statusSnapshot(now = Date.now()): FleetStatus {
    return { ...this.live.status(this.fleet, this.relayConnected(), now), coordination_events: this.coordinator.activeEvents() };
  }

  private relayConnected(): boolean {
    return this.relayCount > 0;
  }

  /** fleet_status, split into parts of ≤1,000 drones so no frame nears the 1 MiB message limit. */
  private statusFrames(now: number): string[] {
    const st = this.statusSnapshot(now);
    if (st.drones.length <= FLEET_STATUS_CHUNK) return [JSON.stringify(st)];
    const parts = Math.ceil(st.drones.length / FLEET_STATUS_CHUNK);
    const out: string[] = [];
    for (let p = 0; p < parts; p++) {
      out.push(
        JSON.stringify({ ...st, part: p + 1, parts, drones: st.drones.slice(p * FLEET_STATUS_CHUNK, (p + 1) * FLEET_STATUS_CHUNK) }),
      );
    }
    return out;
  }

  private sendStatus(ws: WebSocket, now: number): void {
    for (const f of this.statusFrames(now)) this.sendRaw(ws, f);
  }

  private broadcastStatus(now: number): void {
    const sockets = this.ctx.getWebSockets("dashboard");
    if (!sockets.length) return;
    const frames = this.statusFrames(now);
    for (const ws of sockets) for (const f of frames) this.sendRaw(ws, f);
  }

  /**
   * Per-drone link changes. When many drones change at once (a relay back after an outage),
   * one fleet_status replaces hundreds of link_status frames per dashboard.
   */
  private announceLinks(changes: { id: string; state: "live" | "stale"; lastSeen: number }[], now: number): void {
    if (!changes.length) return;
    if (changes.length > LINK_FRAMES_MAX) {
      this.broadcastStatus(now);
      return;
    }
    for (const c of changes) {
      this.broadcast({ type: "link_status", scope: "drone", drone_id: c.id, state: c.state, ts: now, last_seen: c.lastSeen });
    }
  }

  private broadcastRelayLink(state: "up" | "down"): void {
    const frame: LinkStatus = { type: "link_status", scope: "relay", state, ts: Date.now(), relays: this.relayCount };
    this.broadcast(frame);
  }

  /**
   * One alarm serves two clocks: the 5 s status tick (while anyone is connected or a drone may
   * still go stale) and the earliest command deadline.
   */
  private async scheduleAlarm(): Promise<void> {
    const wants: number[] = [];
    if (this.ctx.getWebSockets().length > 0 || this.live.anyLive()) {
      this.statusDueAt ??= Date.now() + LIMITS.statusIntervalMs;
      wants.push(this.statusDueAt);
    }
    const deadline = this.ledger.earliestDeadline();
    if (deadline !== null) wants.push(deadline);
    if (this.anyAirborne()) {
      this.detectDueAt ??= Date.now() + DETECT_INTERVAL_MS;
      wants.push(this.detectDueAt);
    }
    if (!wants.length) return;
    // A due time already past (a slow pass, a test forcing a clock) fires at the next moment.
    const want = Math.max(Math.min(...wants), Date.now() + 1);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > want) await this.ctx.storage.setAlarm(want);
  }

  // ------------------------------------------------------------------ sending

  private broadcast(msg: ServerMessage): void {
    const sockets = this.ctx.getWebSockets("dashboard");
    if (!sockets.length) return;
    const raw = JSON.stringify(msg);
    for (const ws of sockets) this.sendRaw(ws, raw);
  }

  private send(ws: WebSocket, msg: ServerMessage | { type: string; [k: string]: unknown }): void {
    this.sendRaw(ws, JSON.stringify(msg));
  }

  private sendRaw(ws: WebSocket, raw: string): void {
    this.trySend(ws, raw);
  }

  private trySend(ws: WebSocket, raw: string): boolean {
    try {
      ws.send(raw);
      return true;
    } catch {
      // The socket closed between listing and sending; its close handler cleans up.
      return false;
    }
  }

  /** A dashboard sending relay frames (or the reverse) is refused as forbidden, not "unknown". */
  private refineTypeError(err: ErrorFrame, otherRoleTypes: readonly string[], otherRole: string): ErrorFrame {
    if (err.code !== "unknown_type") return err;
    const m = /unknown message type "(.*)"/.exec(err.message);
    if (m && otherRoleTypes.includes(m[1]!) && m[1] !== "ping") {
      return { ...err, code: "forbidden", message: `${m[1]} is a ${otherRole} message; this socket may not send it` };
    }
    return err;
  }

  // ------------------------------------------------------------------ storage

  private rememberFleet(name: string | null): void {
    if (!name || name === this.fleet) return;
    this.fleet = name;
    this.sql.exec(`INSERT INTO meta (key, value) VALUES ('fleet', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, name);
  }

  private migrate(): void {
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS drones (drone_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, received_at INTEGER NOT NULL, sample TEXT NOT NULL, relay_id TEXT)`,
    );
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS config (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, body TEXT NOT NULL, updated_at INTEGER NOT NULL, updated_by TEXT NOT NULL)`,
    );
    this.ledger.migrate();
    this.missions.migrate();
    this.coordinator.migrate();
    this.analytics.migrate();
  }

  private load(): void {
    const now = Date.now();
    for (const row of this.sql.exec<{ key: string; value: string }>(`SELECT key, value FROM meta`)) {
      if (row.key === "fleet") this.fleet = row.value;
    }
    for (const row of this.sql.exec<{ sample: string; received_at: number; relay_id: string | null }>(`SELECT sample, received_at, relay_id FROM drones`)) {
      const parsed = TelemetrySample.safeParse(JSON.parse(row.sample));
      if (parsed.success) this.live.restore(parsed.data, row.received_at, now);
      if (row.relay_id && parsed.success) this.relayOf.set(parsed.data.drone_id, row.relay_id);
    }
    const cfg = this.sql.exec<{ body: string }>(`SELECT body FROM config WHERE id = 1`).toArray()[0];
    if (cfg) {
      const parsed = parseFleetConfig(JSON.parse(cfg.body));
      if (parsed.ok) this.config = { ...parsed.config, version: (JSON.parse(cfg.body) as { version: number }).version };
    }
    this.missions.load();
    this.coordinator.load(now);
    this.analytics.load();
    // Hibernated sockets come back with the object; relay count is derived, not stored.
    this.relayCount = this.ctx.getWebSockets("relay").length;
  }
}
