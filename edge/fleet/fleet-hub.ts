/**
 * The fleet layer's entry: FleetHub, one Durable Object per fleet and the single writer of the
 * fleet's live state. This class is lifecycle and wiring only:
 *  - the constructor migrates storage (schema.ts), loads state and wires the modules;
 *  - `fetch` takes exactly two requests, the WebSocket upgrades /ws (dashboards) and /relay, with
 *    the identity the Worker verified (IDENTITY_HEADER in sockets.ts);
 *  - `webSocketMessage` / `Close` / `Error` hand frames to dashboard-frames.ts and ingest.ts;
 *  - `alarm` runs the clocks alarm-plan.ts says are due (status tick, detection, deadlines);
 *  - typed RPC methods serve the Worker's routes and the cron (getStatus, getConfig, putConfig,
 *    listCommands, listMissions, listCoordination, getCoordinationEvent, analyticsLive,
 *    analyticsDeadLetters, flushOutbox, listRelays, assignDroneRelay, releaseRelayId;
 *    internalCounts for the leak checks). Callers check roles, bodies and ids before they call.
 * The modules beside it own the rest, each saying what in its opening comment: sockets, flow,
 * relay-registry, ingest, fan-out, status, dashboard-frames, alarm-plan, config-store,
 * command-desk, ledger, missions, collision-avoidance, analytics, outbox, alerts, limits, schema,
 * clock.
 *
 * Imports: edge/protocol, edge/domain, and of edge/postgres the client, the drain and the
 * Directory's stub (analytics.ts). Never edge/worker: the Worker reaches this object only through
 * its stub, and its Env extends this layer's FleetEnv (env.ts).
 */
import { DurableObject } from "cloudflare:workers";
import type { FleetConfig } from "../domain/fleet-config";
import { isAirborne } from "../domain/drone";
import { log } from "../domain/log";
import { LiveState } from "../domain/live-state";
import type { FlushResult } from "../postgres/drain";
import { CLOSE_CODES, LIMITS, type AuditCursor, type CoordinationEventView, type ErrorFrame, type FleetStatus, type RelayCommand } from "../protocol";
import { AlarmPlan } from "./alarm-plan";
import { FleetAnalytics, type AnalyticsLiveView } from "./analytics";
import { systemClock, type Clock } from "./clock";
import { coordinationDrones, Coordinator, RESUME_GAP_MS, type TrackPoint } from "./collision-avoidance";
import { CommandDesk, type HubPorts } from "./command-desk";
import { ConfigStore } from "./config-store";
import { DashboardFrames } from "./dashboard-frames";
import type { FleetEnv } from "./env";
import { COALESCE_MS, FanOut } from "./fan-out";
import { Ingest, PERSIST, type PersistPolicy } from "./ingest";
import { CommandLedger, type AuditEntry } from "./ledger";
import { positiveInt, RELAY_LIMITS, socketsPerToken, TOKEN_LEEWAY_MS, type FlowLimits } from "./limits";
import { MissionStore } from "./missions";
import { RelayRegistry, type RelayView } from "./relay-registry";
import { Profiler, type ProfileView } from "./profile";
import { migrate } from "./schema";
import { defaultFlowLimits, IDENTITY_HEADER, isDashboard, Sockets, type Identity } from "./sockets";
import { StatusBoard } from "./status";

export class FleetHub extends DurableObject<FleetEnv> {
  /**
   * The object's clock; every module reads time through it. Tests inside workerd
   * (runInDurableObject) put their own clock here to move time without sleeping.
   */
  clock: Clock;
  /** Flow control per dashboard socket (limits.ts); tests shrink the window here. */
  flowLimits: FlowLimits = defaultFlowLimits();
  /** Dashboard telemetry coalescing window, ms (fan-out.ts); tests widen it here. */
  coalesceMs = COALESCE_MS;
  /** When the live state is written (ingest.ts); tests lower the rate at which frames share writes. */
  persist: PersistPolicy = { ...PERSIST };
  /** Where this object's time goes (profile.ts); read by GET /profile and the bench. */
  readonly profiler = new Profiler();
  private readonly sql: SqlStorage;
  private fleet = "";
  private readonly live = new LiveState();
  private readonly plan = new AlarmPlan();
  private readonly sockets: Sockets;
  private readonly config: ConfigStore;
  private readonly ledger: CommandLedger;
  private readonly missions: MissionStore;
  private readonly desk: CommandDesk;
  private readonly coordinator: Coordinator;
  private readonly analytics: FleetAnalytics;
  private readonly status: StatusBoard;
  private readonly fanOut: FanOut;
  private readonly ingest: Ingest;
  private readonly dashboardFrames: DashboardFrames;
  private readonly relays: RelayRegistry;

  constructor(ctx: DurableObjectState, env: FleetEnv, clock: Clock = systemClock) {
    super(ctx, env);
    this.clock = clock;
    const now = () => this.clock.now();
    this.sql = ctx.storage.sql;
    this.sockets = new Sockets(ctx, {
      dashboardsPerToken: socketsPerToken(env.MAX_DASHBOARD_SOCKETS_PER_TOKEN),
      relaysPerToken: positiveInt(env.MAX_RELAY_SOCKETS_PER_TOKEN, RELAY_LIMITS.socketsPerSubject),
      now,
      flowLimits: () => this.flowLimits,
      drop: (ws) => this.dropSocket(ws),
      spans: this.profiler,
    });
    const newDronesPerMinute = positiveInt(env.MAX_NEW_DRONES_PER_MINUTE, RELAY_LIMITS.newDronesPerMinute);
    this.relays = new RelayRegistry(this.sql, { staleAfterMs: LIMITS.staleAfterMs, newDronesPerMinute, newDronesBurst: RELAY_LIMITS.newDronesBurst });
    this.config = new ConfigStore(this.sql);
    this.analytics = new FleetAnalytics(this.sql, env, {
      now,
      fleet: () => this.fleet,
      config: () => this.config.current,
      drones: () => this.live.records(),
      activeMissions: () => this.missions.activeCount(),
      activeCoordinationEvents: () => this.coordinator.activeEvents().length,
      extraConditions: () => this.coordinator.alertConditions(),
      broadcast: (frame) => this.sockets.broadcast(frame),
      waitUntil: (p) => this.ctx.waitUntil(p),
    });
    // Analytics hooks: final command states and mission changes go to the outbox.
    this.ledger = new CommandLedger(this.sql, (row) => {
      this.analytics.onCommandFinal(row);
      this.coordinator.onCommandFinal(row); // collision avoidance follows its own commands
    });
    this.missions = new MissionStore(this.sql, (m, at) => this.analytics.onMission(m, at));
    this.desk = new CommandDesk(this.deskPorts(), this.ledger, this.missions);
    this.coordinator = new Coordinator(this.sql, {
      config: () => this.config.current,
      drones: () => coordinationDrones(this.live.records(), this.missions, (id) => this.coordinator.holdFor(id, now())),
      issue: (commands, eventId) => commands.filter((c) => this.desk.system(c, `coordinator:${eventId}`)).length,
      changed: (event) => {
        this.sockets.broadcast({ type: "coordination_event", event });
        this.analytics.onCoordinationEvent(event, now()); // analytics hook: outbox
      },
    });
    this.status = new StatusBoard({ spans: this.profiler, fleet: () => this.fleet, live: this.live, sockets: this.sockets, activeEvents: () => this.coordinator.activeEvents() });
    this.fanOut = new FanOut(this.sql, {
      clock: { now },
      sockets: this.sockets,
      live: this.live,
      flowLimits: () => this.flowLimits,
      flushAt: () => this.ctx.waitUntil(this.scheduleAlarm()),
      later: (fn, ms) => this.later(fn, ms),
      coalesceMs: () => this.coalesceMs,
      spans: this.profiler,
    });
    this.sockets.hooks = { lagging: (ws) => this.fanOut.onLagging(ws), beforeFrames: () => this.fanOut.flushHeld() };
    this.ingest = new Ingest(this.sql, {
      clock: { now },
      fleet: () => this.fleet,
      live: this.live,
      sockets: this.sockets,
      fanOut: this.fanOut,
      status: this.status,
      desk: this.desk,
      missions: this.missions,
      coordinator: this.coordinator,
      relays: this.relays,
      newDronesPerMinute,
      // Results and progress count only from the relay the ledger says the command went to.
      commandRelay: (id) => {
        const row = this.ledger.get(id);
        return row ? row.relay_id : undefined;
      },
      accepted: (samples, at) => this.analytics.onTelemetry(samples, at), // analytics hook: snapshots, charging
      later: (fn, ms) => this.later(fn, ms),
      persist: () => this.persist,
      spans: this.profiler,
    });
    this.dashboardFrames = new DashboardFrames({ spans: this.profiler, clock: { now }, sockets: this.sockets, fanOut: this.fanOut, desk: this.desk });
    ctx.blockConcurrencyWhile(async () => {
      const at = now();
      migrate(ctx.storage, at);
      this.fleet = fleetName(this.sql, ctx.id.name);
      this.config.load();
      this.ingest.load(at);
      this.relays.load(at, this.openRelayIds());
      this.fanOut.load();
      this.missions.load();
      this.coordinator.load(at);
      this.analytics.load();
    });
  }

  /** A timer port (coalesced fan-out, the deferred live-state write): `fn` in its own profiled turn. */
  private later(fn: () => void, ms: number): void {
    setTimeout(() => {
      try {
        this.profiler.turn("timer", fn);
      } catch (err) {
        log("error", "fleet object timer failed", { fleet: this.fleet }, err);
      }
    }, Math.max(0, ms));
  }

  // ------------------------------------------------------------------ RPC (routes, cron)

  /** GET /status: the fleet_status now, never split into parts. */
  getStatus(): FleetStatus {
    return this.profiler.turn("rpc", () => this.profiler.span("status", () => this.status.snapshot(this.clock.now())));
  }

  getConfig(): FleetConfig {
    return this.config.current;
  }

  /** PUT /config: `config` is already validated; stored as the next version and returned. */
  putConfig(config: FleetConfig, by: string): FleetConfig {
    return this.config.put(config, by, this.clock.now());
  }

  /** GET /commands: the audit, newest first; `before` the cursor of the previous page (rest.ts). */
  listCommands(limit: number, before?: AuditCursor): AuditEntry[] {
    return this.profiler.turn("rpc", () => this.ledger.list(limit, before));
  }

  listMissions(limit: number): ReturnType<MissionStore["list"]> {
    return this.missions.list(limit);
  }

  listCoordination(limit: number): { events: CoordinationEventView[]; last_pass: Coordinator["lastPass"] } {
    return this.profiler.turn("rpc", () => ({ events: this.coordinator.list(limit), last_pass: this.coordinator.lastPass }));
  }

  /** GET /coordination/:id: the event and its drones' tracks, or null when there is no such event. */
  getCoordinationEvent(eventId: string): { event: CoordinationEventView; tracks: Record<string, TrackPoint[]> } | null {
    return this.profiler.turn("rpc", () => this.coordinator.replay(eventId));
  }

  /** GET /analytics/live: the live metrics now, active alerts and the outbox's state. */
  analyticsLive(): AnalyticsLiveView {
    return this.profiler.turn("rpc", () => this.profiler.span("analytics", () => this.analytics.liveView(this.clock.now())));
  }

  /** GET /analytics/dead-letters (admin): outbox rows Postgres refused, newest first. */
  analyticsDeadLetters(limit: number, before?: number): ReturnType<FleetAnalytics["deadLetters"]> {
    return this.analytics.deadLetters(limit, before);
  }

  /** POST /analytics/dead-letters/replay (admin): dead letters back into the outbox; `ids` those, else all. */
  analyticsReplayDeadLetters(ids?: number[]): ReturnType<FleetAnalytics["replayDeadLetters"]> {
    return this.profiler.turn("rpc", () => this.analytics.replayDeadLetters(ids));
  }

  /** Drain this fleet's outbox into Postgres (the cron trigger and the recompute route call it). */
  flushOutbox(): Promise<FlushResult> {
    // Only the part before the first await is one turn; the rest runs in later turns.
    return this.profiler.turn("rpc", () => this.profiler.span("analytics", () => this.analytics.flush()));
  }

  /** GET /relays (admin): every relay_id the fleet knows, its token subject and its drones. */
  listRelays(): RelayView[] {
    return this.relays.list();
  }

  /**
   * PUT /drones/:id/relay (admin): give a drone to another relay (`relayId`), or to none (the next
   * relay to report it takes it). Its next sample counts whatever its seq, since the new relay
   * counts its own. Null when the fleet has no such drone.
   */
  assignDroneRelay(droneId: string, relayId: string | null): { drone_id: string; relay_id: string | null; previous: string | null } | null {
    if (!this.live.has(droneId)) return null;
    const previous = this.relays.ownerOf(droneId) ?? null;
    // A deferred write of the old relay's sample must not land on top of what follows.
    this.ingest.saveLiveState();
    this.relays.reassign(droneId, relayId);
    this.live.resetSeq(droneId);
    this.sql.exec(`UPDATE drones SET seq = -1 WHERE drone_id = ?`, droneId);
    return { drone_id: droneId, relay_id: relayId, previous };
  }

  /** DELETE /relays/:relay_id (admin): unbind a relay_id from its token subject (refused while connected). */
  releaseRelayId(relayId: string): "released" | "connected" | "unknown" {
    return this.relays.release(relayId);
  }

  /** GET /profile (admin): where this object's time went since the last reset (profile.ts). */
  profile(reset: boolean): ProfileView {
    return this.profiler.view(reset);
  }

  /**
   * What the object holds per socket and per relay, for the leak checks (tests; every count but
   * `listed` and `relays`/`owners` returns to its baseline once the sockets closed).
   */
  internalCounts(): Sockets["counts"] & FanOut["counts"] & RelayRegistry["counts"] & { framesAfterClose: number; limiter: number; liveStateWritePending: boolean } {
    return {
      liveStateWritePending: this.ingest.writePending,
      ...this.sockets.counts,
      framesAfterClose: this.sockets.framesAfterClose,
      ...this.fanOut.counts,
      limiter: this.dashboardFrames.limiterSize,
      ...this.relays.counts,
    };
  }

  // ------------------------------------------------------------------ lifecycle entry points

  /** Only the two socket upgrades come here; the Worker has checked token, role, origin and upgrade. */
  override async fetch(req: Request): Promise<Response> {
    try {
      const path = new URL(req.url).pathname;
      // The token's exp (seconds): the socket lives as long as the Worker would take the token.
      const exp = Number(req.headers.get(IDENTITY_HEADER.exp));
      const who: Identity = {
        sub: req.headers.get(IDENTITY_HEADER.sub) ?? "unknown",
        role: req.headers.get(IDENTITY_HEADER.role) ?? "viewer",
        expiresAt: Number.isFinite(exp) && exp > 0 ? exp * 1000 + TOKEN_LEEWAY_MS : null,
      };
      if (path === "/ws") return this.acceptDashboard(who);
      if (path === "/relay") return this.acceptRelay(who);
      return Response.json({ error: { code: "not_found", message: `no route ${path}` } }, { status: 404 });
    } catch (err) {
      log("error", "fleet object fetch failed", { fleet: this.fleet }, err);
      return Response.json({ error: { code: "internal", message: "fleet object error" } }, { status: 500 });
    }
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    // A socket this object closed (a flood, an expired token) may still deliver what it had sent:
    // dropped unread, so a flooding socket costs the others as little as possible.
    if (this.sockets.isClosing(ws)) {
      this.sockets.droppedAfterClose();
      return;
    }
    const conn = this.sockets.conn(ws);
    if (!conn) {
      ws.close(1011, "unknown socket");
      return;
    }
    try {
      if (isDashboard(conn)) this.profiler.turn("dashboard_frame", () => this.dashboardFrames.onFrame(ws, conn, message));
      // New telemetry may have put a drone in the air: detection passes need the alarm.
      else if (this.sockets.expired(conn, this.clock.now())) this.sockets.closeForExpiry(ws, conn);
      else if (this.profiler.turn("relay_frame", () => this.ingest.onFrame(ws, conn.att, message))) {
        // A first airborne drone needs the detection clock; a changed path wants the next pass early.
        if (!this.plan.detectionPlanned || (this.coordinator.passWanted() && this.plan.soon(this.clock.now()))) this.ctx.waitUntil(this.scheduleAlarm());
      }
    } catch (err) {
      // A bug must not take the object or the socket down: answer in-band and go on.
      log("error", "fleet object message handler failed", { fleet: this.fleet }, err);
      const frame: ErrorFrame = { type: "error", code: "internal", message: "internal error handling the frame" };
      if (isDashboard(conn)) this.sockets.toDashboard(ws, frame);
      else this.sockets.toRelay(ws, frame);
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
    log("warn", "fleet object socket error", { fleet: this.fleet }, err);
    this.dropSocket(ws);
  }

  override async alarm(): Promise<void> {
    try {
      this.profiler.turn("alarm", () => {
        const now = this.clock.now();
        this.desk.expire(now);
        // Sockets whose token expired, dashboards that lagged too long, throttled samples now due.
        this.sockets.closeExpired(now);
        this.sockets.closeTooSlow(now);
        this.fanOut.flushDue(now);
        const due = this.plan.take(now, this.anyAirborne());
        if (due.detect) this.profiler.span("detection", () => this.coordinator.pass(now));
        else if (due.resume) this.profiler.span(this.coordinator.detectionUnfinished() ? "detection" : "resolution", () => this.coordinator.resume(now));
        if (due.detect || due.resume) this.plan.resumeAt(this.coordinator.resumeWanted() ? now + RESUME_GAP_MS : null);
        if (due.status) {
          this.profiler.span("status", () => this.status.tick(now));
          this.profiler.span("analytics", () => this.analytics.tick(now)); // analytics hook: analytics_live, alerts, performance_metrics
        }
      });
    } catch (err) {
      log("error", "fleet object alarm failed", { fleet: this.fleet }, err);
    } finally {
      await this.scheduleAlarm();
    }
  }

  // ------------------------------------------------------------------ wiring

  private acceptDashboard(who: Identity): Response {
    const now = this.clock.now();
    const accepted = this.sockets.acceptDashboard(who, now);
    if ("limit" in accepted) {
      return Response.json({ error: { code: "too_many_connections", message: `at most ${accepted.limit} dashboard sockets per token subject in a fleet` } }, { status: 429 });
    }
    if (accepted.att.expiresAt !== null && accepted.att.expiresAt !== undefined && accepted.att.expiresAt <= now) {
      // The Worker checked the token with the system clock; the object's (a test's) may be later.
      this.sockets.close(accepted.server, CLOSE_CODES.tokenExpired, "token expired");
    }
    this.status.sendTo(accepted.server, now);
    this.ctx.waitUntil(this.scheduleAlarm());
    return new Response(null, { status: 101, webSocket: accepted.client });
  }

  private acceptRelay(who: Identity): Response {
    const now = this.clock.now();
    const accepted = this.sockets.acceptRelay(who, now);
    if ("limit" in accepted) {
      return Response.json({ error: { code: "too_many_connections", message: `at most ${accepted.limit} relay sockets per token subject in a fleet` } }, { status: 429 });
    }
    const { client } = accepted;
    this.status.relayLink("up", now);
    this.ctx.waitUntil(this.scheduleAlarm());
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A socket closed (either side) or errored: forget everything held for it. Idempotent. */
  private dropSocket(ws: WebSocket): void {
    const { conn, lastRelay } = this.sockets.drop(ws);
    const now = this.clock.now();
    if (conn && isDashboard(conn)) {
      this.fanOut.forget(ws);
      this.dashboardFrames.forget(ws);
      this.desk.forget(ws);
    } else if (conn?.att.relayId && !this.sockets.relaySocket(conn.att.relayId, ws)) {
      // Its drones stay its own for the stale bound from now (relay-registry.ts).
      this.relays.disconnected(conn.att.relayId, now);
    }
    if (lastRelay) this.status.relayLink("down", now);
  }

  /** relay_ids with an open socket (at start-up, from the hibernated sockets' attachments). */
  private openRelayIds(): Set<string> {
    const out = new Set<string>();
    for (const ws of this.sockets.relaySockets()) {
      const c = this.sockets.conn(ws);
      if (c && !isDashboard(c) && c.att.relayId) out.add(c.att.relayId);
    }
    return out;
  }

  /** Set the one alarm for the earliest clock that is wanted (alarm-plan.ts). */
  private async scheduleAlarm(): Promise<void> {
    const want = this.plan.next(this.clock.now(), {
      status: this.sockets.any() || this.live.anyLive(),
      deadline: this.ledger.earliestDeadline(),
      detection: this.anyAirborne(),
      expiry: this.sockets.earliestExpiry(),
      flush: this.fanOut.nextFlushAt(),
    });
    if (want === null) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > want) await this.ctx.storage.setAlarm(want);
  }

  /** What the command desk may touch in this object. */
  private deskPorts(): HubPorts {
    return {
      now: () => this.clock.now(),
      config: () => this.config.current,
      drone: (id) => this.live.get(id),
      drones: () => this.live.records(),
      relayFor: (droneId) => {
        const relayId = this.relays.ownerOf(droneId);
        const ws = relayId ? this.sockets.relaySocket(relayId) : null;
        if (!relayId || !ws) return null;
        return { relayId, send: (frame: RelayCommand) => this.sockets.toRelay(ws, frame) };
      },
      reply: (ws, frame) => this.sockets.toDashboard(ws, frame),
      broadcast: (frame) => this.sockets.broadcast(frame),
      deadlineAdded: () => this.ctx.waitUntil(this.scheduleAlarm()),
      override: (eventId, action, by, reason) => this.coordinator.override(eventId, action, by, reason, this.clock.now()),
    };
  }

  /** Whether any live drone is in the air (detection runs only then). */
  private anyAirborne(): boolean {
    for (const rec of this.live.records()) {
      if (rec.link === "live" && isAirborne(rec.sample)) return true;
    }
    return false;
  }
}

/**
 * The fleet name is the object's own name, `ctx.id.name`: the Worker and the cron address a
 * fleet's object with idFromName(fleet), and the runtime hands that name to the object on every
 * entry point. It is also stored once (meta 'fleet'), because an alarm can wake the object with a
 * nameless id: in production, alarms scheduled before the runtime began passing names
 * (2026-03-15); in local workerd, alarms that fire after the process restarted (workerd#6850).
 */
export function fleetName(sql: SqlStorage, own: string | undefined): string {
  const stored = sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'fleet'`).toArray()[0]?.value;
  if (!own) return stored ?? "";
  if (own !== stored) sql.exec(`INSERT INTO meta (key, value) VALUES ('fleet', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, own);
  return own;
}
