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
 *    flushOutbox). Callers check roles, bodies and ids before they call.
 * The modules beside it own the rest, each saying what in its opening comment: sockets, ingest,
 * fan-out, status, dashboard-frames, alarm-plan, config-store, command-desk, ledger, missions,
 * collision-avoidance, analytics, outbox, alerts, limits, schema, clock.
 *
 * Imports: edge/protocol, edge/domain, and of edge/postgres the client, the drain and the
 * Directory's stub (analytics.ts). Never edge/worker: the Worker reaches this object only through
 * its stub, and its Env extends this layer's FleetEnv (env.ts).
 */
import { DurableObject } from "cloudflare:workers";
import type { FleetConfig } from "../domain/fleet-config";
import { isAirborne } from "../domain/drone";
import { LiveState } from "../domain/live-state";
import type { FlushResult } from "../postgres/drain";
import type { CoordinationEventView, ErrorFrame, FleetStatus, RelayCommand } from "../protocol";
import { AlarmPlan } from "./alarm-plan";
import { FleetAnalytics, type AnalyticsLiveView } from "./analytics";
import { systemClock, type Clock } from "./clock";
import { coordinationDrones, Coordinator, type TrackPoint } from "./collision-avoidance";
import { CommandDesk, type HubPorts } from "./command-desk";
import { ConfigStore } from "./config-store";
import { DashboardFrames } from "./dashboard-frames";
import type { FleetEnv } from "./env";
import { FanOut } from "./fan-out";
import { Ingest } from "./ingest";
import { CommandLedger, type AuditEntry } from "./ledger";
import { socketsPerToken } from "./limits";
import { MissionStore } from "./missions";
import { migrate } from "./schema";
import { IDENTITY_HEADER, isDashboard, Sockets, type Identity } from "./sockets";
import { StatusBoard } from "./status";

export class FleetHub extends DurableObject<FleetEnv> {
  /**
   * The object's clock; every module reads time through it. Tests inside workerd
   * (runInDurableObject) put their own clock here to move time without sleeping.
   */
  clock: Clock;
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

  constructor(ctx: DurableObjectState, env: FleetEnv, clock: Clock = systemClock) {
    super(ctx, env);
    this.clock = clock;
    const now = () => this.clock.now();
    this.sql = ctx.storage.sql;
    this.sockets = new Sockets(ctx, socketsPerToken(env.MAX_DASHBOARD_SOCKETS_PER_TOKEN));
    this.config = new ConfigStore(this.sql);
    this.analytics = new FleetAnalytics(this.sql, env, {
      now,
      fleet: () => this.fleet,
      config: () => this.config.current,
      drones: () => this.live.records(),
      activeMissions: () => this.missions.activeCount(),
      activeCoordinationEvents: () => this.coordinator.activeEvents().length,
      broadcast: (frame) => this.sockets.broadcast(frame),
      waitUntil: (p) => this.ctx.waitUntil(p),
    });
    // Analytics hooks: final command states and mission changes go to the outbox.
    this.ledger = new CommandLedger(this.sql, (row) => this.analytics.onCommandFinal(row));
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
    this.status = new StatusBoard({ fleet: () => this.fleet, live: this.live, sockets: this.sockets, activeEvents: () => this.coordinator.activeEvents() });
    this.fanOut = new FanOut(this.sockets, this.live);
    const drop = (ws: WebSocket) => this.dropSocket(ws);
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
      drop,
      accepted: (samples, at) => this.analytics.onTelemetry(samples, at), // analytics hook: snapshots, charging
    });
    this.dashboardFrames = new DashboardFrames({ clock: { now }, sockets: this.sockets, fanOut: this.fanOut, desk: this.desk, drop });
    ctx.blockConcurrencyWhile(async () => {
      const at = now();
      migrate(ctx.storage, at);
      this.fleet = fleetName(this.sql, ctx.id.name);
      this.config.load();
      this.ingest.load(at);
      this.missions.load();
      this.coordinator.load(at);
      this.analytics.load();
    });
  }

  // ------------------------------------------------------------------ RPC (routes, cron)

  /** GET /status: the fleet_status now, never split into parts. */
  getStatus(): FleetStatus {
    return this.status.snapshot(this.clock.now());
  }

  getConfig(): FleetConfig {
    return this.config.current;
  }

  /** PUT /config: `config` is already validated; stored as the next version and returned. */
  putConfig(config: FleetConfig, by: string): FleetConfig {
    return this.config.put(config, by, this.clock.now());
  }

  /** GET /commands: the audit, newest first; `before` a received_at for paging. */
  listCommands(limit: number, before?: number): AuditEntry[] {
    return this.ledger.list(limit, before);
  }

  listMissions(limit: number): ReturnType<MissionStore["list"]> {
    return this.missions.list(limit);
  }

  listCoordination(limit: number): { events: CoordinationEventView[]; last_pass: Coordinator["lastPass"] } {
    return { events: this.coordinator.list(limit), last_pass: this.coordinator.lastPass };
  }

  /** GET /coordination/:id: the event and its drones' tracks, or null when there is no such event. */
  getCoordinationEvent(eventId: string): { event: CoordinationEventView; tracks: Record<string, TrackPoint[]> } | null {
    return this.coordinator.replay(eventId);
  }

  /** GET /analytics/live: the live metrics now, active alerts and the outbox's state. */
  analyticsLive(): AnalyticsLiveView {
    return this.analytics.liveView(this.clock.now());
  }

  /** Drain this fleet's outbox into Postgres (the cron trigger and the recompute route call it). */
  flushOutbox(): Promise<FlushResult> {
    return this.analytics.flush();
  }

  // ------------------------------------------------------------------ lifecycle entry points

  /** Only the two socket upgrades come here; the Worker has checked token, role, origin and upgrade. */
  override async fetch(req: Request): Promise<Response> {
    try {
      const path = new URL(req.url).pathname;
      const who: Identity = { sub: req.headers.get(IDENTITY_HEADER.sub) ?? "unknown", role: req.headers.get(IDENTITY_HEADER.role) ?? "viewer" };
      if (path === "/ws") return this.acceptDashboard(who);
      if (path === "/relay") return this.acceptRelay(who);
      return Response.json({ error: { code: "not_found", message: `no route ${path}` } }, { status: 404 });
    } catch (err) {
      console.error(`FleetHub(${this.fleet}) fetch failed`, err);
      return Response.json({ error: { code: "internal", message: "fleet object error" } }, { status: 500 });
    }
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const conn = this.sockets.conn(ws);
    if (!conn) {
      ws.close(1011, "unknown socket");
      return;
    }
    try {
      if (isDashboard(conn)) this.dashboardFrames.onFrame(ws, conn, message);
      // New telemetry may have put a drone in the air: detection passes need the alarm.
      else if (this.ingest.onFrame(ws, conn.att, message) && !this.plan.detectionPlanned) this.ctx.waitUntil(this.scheduleAlarm());
    } catch (err) {
      // A bug must not take the object or the socket down: answer in-band and go on.
      console.error(`FleetHub(${this.fleet}) message handler failed`, err);
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
    console.warn(`FleetHub(${this.fleet}) socket error`, err);
    this.dropSocket(ws);
  }

  override async alarm(): Promise<void> {
    try {
      const now = this.clock.now();
      this.desk.expire(now);
      const due = this.plan.take(now, this.anyAirborne());
      if (due.detect) this.coordinator.pass(now);
      if (due.status) {
        this.status.tick(now);
        this.analytics.tick(now); // analytics hook: analytics_live, alerts, performance_metrics
      }
    } catch (err) {
      console.error(`FleetHub(${this.fleet}) alarm failed`, err);
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
    this.status.sendTo(accepted.server, now);
    this.ctx.waitUntil(this.scheduleAlarm());
    return new Response(null, { status: 101, webSocket: accepted.client });
  }

  private acceptRelay(who: Identity): Response {
    const now = this.clock.now();
    const { client } = this.sockets.acceptRelay(who, now);
    this.status.relayLink("up", now);
    this.ctx.waitUntil(this.scheduleAlarm());
    return new Response(null, { status: 101, webSocket: client });
  }

  private dropSocket(ws: WebSocket): void {
    const { lastRelay } = this.sockets.drop(ws);
    this.desk.forget(ws);
    if (lastRelay) this.status.relayLink("down", this.clock.now());
  }

  /** Set the one alarm for the earliest clock that is wanted (alarm-plan.ts). */
  private async scheduleAlarm(): Promise<void> {
    const want = this.plan.next(this.clock.now(), {
      status: this.sockets.any() || this.live.anyLive(),
      deadline: this.ledger.earliestDeadline(),
      detection: this.anyAirborne(),
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
        const relayId = this.ingest.relayOfDrone(droneId);
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
