/**
 * Telemetry to dashboards. Each dashboard's subscription (none, every drone, or a list; one frame
 * per update or one `telemetry_batch` per relay frame; an optional max_rate_hz) is held here in
 * memory, indexed by drone, and stored so that it survives eviction: the mode in the socket's
 * attachment, a named list in the `dashboard_subs` table (a 10,000-id list does not fit a 16 KiB
 * attachment). Accepted updates are serialised once however many dashboards receive them.
 *
 * Bounded per socket: a socket that is throttled (max_rate_hz) or lagging (flow.ts) gets
 * latest-wins per drone — the newest sample of each drone waits in its `pending` map (at most one
 * per drone) instead of a backlog of frames; a throttled one gets them when its interval has
 * passed (on the next fan-out, or the alarm), a lagging one when it has caught up.
 */
import type { LiveState } from "../domain/live-state";
import { LIMITS, type DashboardMessage, type TelemetryBatchFrame, type TelemetryFrame, type TelemetrySample } from "../protocol";
import type { Clock } from "./clock";
import type { FlowLimits } from "./limits";
import type { Spans } from "./profile";
import type { DashboardAttachment, DashboardConn, Sockets } from "./sockets";

type SubscribeTelemetry = Extract<DashboardMessage, { type: "subscribe_telemetry" }>;
type UnsubscribeTelemetry = Extract<DashboardMessage, { type: "unsubscribe_telemetry" }>;

/** A subscribed socket. */
type Sub = {
  ws: WebSocket;
  att: DashboardAttachment;
  /** Named drones ("list" mode). */
  ids: Set<string>;
  /** Minimum time between telemetry rounds (max_rate_hz); 0: none. */
  intervalMs: number;
  /** Earliest time of the next round when throttled. */
  nextAt: number;
  /** Latest sample per drone not yet sent (throttled or lagging). */
  pending: Map<string, TelemetrySample>;
  /** Samples replaced in `pending` by a newer one since the socket started lagging. */
  conflated: number;
};

/** Frames built once per ingested batch and shared by every dashboard. */
type FanOutCache = { frames: Map<TelemetrySample, string>; allFrames: string[] | null; allBatch: string | null };

export interface FanOutPorts {
  clock: Clock;
  sockets: Sockets;
  live: LiveState;
  flowLimits(): FlowLimits;
  /** A throttled socket has samples due at `at`: make sure the alarm fires by then. */
  flushAt(at: number): void;
  /** Run `fn` in its own turn after `ms` (real time): the coalescing timer. */
  later(fn: () => void, ms: number): void;
  /** The coalescing window, ms (COALESCE_MS; tests widen it); 0: never coalesce. */
  coalesceMs(): number;
  spans: Spans;
}

/**
 * Adaptive coalescing (issue 13): telemetry goes out in the turn it arrived unless the object
 * fanned out less than the coalescing window ago (default COALESCE_MS); then it waits, appended
 * to what is held, until the window since that fan-out has passed. An idle object, or one whose
 * relay frames come further apart than the window, adds no wait; at a higher frame rate dashboards
 * get at most one telemetry round per window, in fewer, larger frames. Nothing is conflated here:
 * every accepted update is delivered, in order (latest-wins is for lagging and throttled sockets).
 */
export const COALESCE_MS = 5;

const batchJson = (updates: TelemetrySample[]) => JSON.stringify({ type: "telemetry_batch", updates } satisfies TelemetryBatchFrame);
const updateJson = (s: TelemetrySample) => JSON.stringify({ type: "telemetry", ...s } satisfies TelemetryFrame);

export class FanOut {
  private readonly subs = new Map<WebSocket, Sub>();
  /** Subscribed to every drone. */
  private readonly all = new Set<Sub>();
  /** drone → the sockets that named it. */
  private readonly byDrone = new Map<string, Set<Sub>>();
  /** Throttled sockets with samples waiting for their interval. */
  private readonly throttled = new Set<Sub>();

  private readonly spans: Spans;
  /** Telemetry held for coalescing, in arrival order, and the JSON of each held frame's samples. */
  private held: TelemetrySample[] = [];
  private heldJson: string[] = [];
  private timerSet = false;
  /** Real time (performance.now) of the last fan-out. */
  private lastAt = -Infinity;

  constructor(
    private readonly sql: SqlStorage,
    private readonly p: FanOutPorts,
  ) {
    this.spans = p.spans;
  }

  private batchFrame(updates: TelemetrySample[]): string {
    return this.spans.span("fanout_serialise", () => batchJson(updates));
  }

  private updateFrames(samples: readonly TelemetrySample[]): string[] {
    return this.spans.span("fanout_serialise", () => samples.map(updateJson));
  }

  private updateFrame(s: TelemetrySample): string {
    return this.spans.span("fanout_serialise", () => updateJson(s));
  }

  /**
   * At object start-up: rebuild every open socket's subscription from its attachment and the
   * stored lists, and drop the rows of sockets that are gone.
   */
  load(): void {
    const lists = new Map<string, string[]>();
    for (const r of this.sql.exec<{ sid: string; drone_id: string }>(`SELECT sid, drone_id FROM dashboard_subs`)) {
      let l = lists.get(r.sid);
      if (!l) lists.set(r.sid, (l = []));
      l.push(r.drone_id);
    }
    const live: string[] = [];
    for (const ws of this.p.sockets.dashboards()) {
      const conn = this.p.sockets.conn(ws);
      if (!conn || conn.att.kind !== "dashboard") continue;
      const att = conn.att as DashboardAttachment & { subs: unknown };
      // An attachment written before subscriptions moved out of it carries the list itself.
      if (Array.isArray(att.subs)) {
        const ids = (att.subs as unknown[]).filter((x): x is string => typeof x === "string");
        att.sid ??= crypto.randomUUID();
        att.subs = "list";
        this.p.sockets.save(ws, att);
        this.storeList(att.sid, ids);
        lists.set(att.sid, ids);
      }
      if (!att.sid) continue;
      live.push(att.sid);
      if (att.subs === "all" || att.subs === "list") this.register(ws, att, lists.get(att.sid) ?? []);
    }
    this.sql.exec(`DELETE FROM dashboard_subs WHERE sid NOT IN (SELECT value FROM json_each(?))`, JSON.stringify(live));
  }

  /**
   * Accepted updates to every subscribed dashboard. `updatesJson`: `JSON.stringify(samples)` when
   * the caller has it already (ingest serialises a frame's samples once, for storage and for the
   * batch frame of every "all" dashboard).
   */
  telemetry(samples: readonly TelemetrySample[], updatesJson?: string): void {
    if (!this.subs.size || !samples.length) return;
    const t = performance.now();
    const windowMs = this.p.coalesceMs();
    if (!this.held.length && t - this.lastAt >= windowMs) {
      this.fanOut(samples, updatesJson);
      return;
    }
    for (const s of samples) this.held.push(s);
    this.heldJson.push(updatesJson ?? JSON.stringify(samples));
    if (!this.timerSet) {
      this.timerSet = true;
      this.p.later(() => this.flushHeld(), Math.max(0, this.lastAt + windowMs - t));
    }
  }

  /** Send what coalescing holds now (its timer, or another frame must not overtake it). */
  flushHeld(): void {
    this.timerSet = false;
    if (!this.held.length) return;
    const samples = this.held;
    const parts = this.heldJson;
    this.held = [];
    this.heldJson = [];
    // The parts are JSON arrays of samples: joined without parsing them again.
    const json = parts.length === 1 ? parts[0]! : `[${parts.map((p) => p.slice(1, -1)).join(",")}]`;
    if (this.subs.size) this.fanOut(samples, json);
  }

  private fanOut(samples: readonly TelemetrySample[], updatesJson?: string): void {
    this.lastAt = performance.now();
    this.deliverAll(samples, updatesJson);
  }

  private deliverAll(samples: readonly TelemetrySample[], updatesJson?: string): void {
    const now = this.p.clock.now();
    const cache: FanOutCache = { frames: new Map(), allFrames: null, allBatch: updatesJson === undefined ? null : `{"type":"telemetry_batch","updates":${updatesJson}}` };
    for (const sub of this.all) this.deliver(sub, samples, now, cache, true);
    if (!this.byDrone.size) return;
    let mine: Map<Sub, TelemetrySample[]> | null = null;
    for (const s of samples) {
      const named = this.byDrone.get(s.drone_id);
      if (!named) continue;
      mine ??= new Map();
      for (const sub of named) {
        const l = mine.get(sub);
        if (l) l.push(s);
        else mine.set(sub, [s]);
      }
    }
    if (mine) for (const [sub, list] of mine) this.deliver(sub, list, now, cache, false);
  }

  /** Replaces the subscription: idempotent, so a client that reconnects simply sends it again. */
  subscribe(ws: WebSocket, conn: DashboardConn, msg: SubscribeTelemetry): void {
    this.flushHeld();
    const att = conn.att;
    this.forget(ws, false);
    const ids = msg.drone_ids === "all" ? null : [...new Set(msg.drone_ids)];
    att.subs = ids === null ? "all" : "list";
    if (msg.batch !== undefined) att.batch = msg.batch;
    if (msg.max_rate_hz !== undefined) att.maxRateHz = msg.max_rate_hz;
    this.storeList(att.sid, ids ?? []);
    this.p.sockets.save(ws, att);
    const sub = this.register(ws, att, ids ?? []);
    this.p.sockets.toDashboard(ws, {
      type: "subscribed",
      request_id: msg.request_id,
      drone_ids: ids ?? "all",
      batch: att.batch,
      ...(att.maxRateHz ? { max_rate_hz: att.maxRateHz } : {}),
    });
    // The latest state of every subscribed drone, so the view is complete at once.
    const current: TelemetrySample[] = [];
    if (ids === null) {
      for (const rec of this.p.live.records()) current.push(rec.sample);
    } else {
      for (const id of ids) {
        const rec = this.p.live.get(id);
        if (rec) current.push(rec.sample);
      }
    }
    if (current.length) this.deliver(sub, current, this.p.clock.now(), null, false, true);
  }

  unsubscribe(ws: WebSocket, conn: DashboardConn, msg: UnsubscribeTelemetry): void {
    this.flushHeld();
    const att = conn.att;
    const prev = this.subs.get(ws);
    let ids: string[] | null = null;
    if (msg.drone_ids !== undefined && msg.drone_ids !== "all" && prev) {
      // From "all", removing some drones leaves an explicit list of the others known now.
      const next = new Set(att.subs === "all" ? this.p.live.ids() : prev.ids);
      for (const id of msg.drone_ids) next.delete(id);
      ids = next.size ? [...next] : null;
    }
    this.forget(ws, false);
    att.subs = ids ? "list" : null;
    this.storeList(att.sid, ids ?? []);
    this.p.sockets.save(ws, att);
    if (ids) this.register(ws, att, ids);
    this.p.sockets.toDashboard(ws, {
      type: "subscribed",
      request_id: msg.request_id,
      drone_ids: ids ?? [],
      batch: att.batch,
      ...(att.maxRateHz ? { max_rate_hz: att.maxRateHz } : {}),
    });
  }

  /** The socket started lagging: tell it (flow.ts decides when). */
  onLagging(ws: WebSocket): void {
    const sub = this.subs.get(ws);
    if (sub) sub.conflated = 0;
    this.p.sockets.lagNotice(ws, {
      type: "lagging",
      state: "lagging",
      ts: this.p.clock.now(),
      pending: sub?.pending.size ?? 0,
      conflated: 0,
      close_after_ms: this.p.flowLimits().lagCloseMs,
    });
  }

  /** The socket caught up: tell it, and send what waited (unless its throttle says later). */
  onCaughtUp(ws: WebSocket): void {
    const sub = this.subs.get(ws);
    const now = this.p.clock.now();
    this.p.sockets.lagNotice(ws, { type: "lagging", state: "caught_up", ts: now, pending: sub?.pending.size ?? 0, conflated: sub?.conflated ?? 0 });
    if (!sub) return;
    sub.conflated = 0;
    if (sub.pending.size && (sub.intervalMs === 0 || now >= sub.nextAt)) this.flush(sub, now);
    else if (sub.pending.size) this.defer(sub);
  }

  /** Alarm: send what throttled sockets hold once their interval has passed. */
  flushDue(now: number): void {
    for (const sub of [...this.throttled]) {
      if (now + 20 >= sub.nextAt && !this.p.sockets.lagging(sub.ws)) this.flush(sub, now);
    }
  }

  /** When the alarm should send throttled samples next, or null. */
  nextFlushAt(): number | null {
    let min: number | null = null;
    for (const sub of this.throttled) if (min === null || sub.nextAt < min) min = sub.nextAt;
    return min;
  }

  /** The socket closed (or its subscription is being replaced: `rows` false keeps the stored list). */
  forget(ws: WebSocket, rows = true): void {
    const sub = this.subs.get(ws);
    if (sub) {
      this.subs.delete(ws);
      this.all.delete(sub);
      this.throttled.delete(sub);
      for (const id of sub.ids) {
        const set = this.byDrone.get(id);
        if (!set) continue;
        set.delete(sub);
        if (!set.size) this.byDrone.delete(id);
      }
    }
    if (!rows) return;
    const att = ws.deserializeAttachment() as DashboardAttachment | null;
    if (att?.kind === "dashboard" && att.sid) this.sql.exec(`DELETE FROM dashboard_subs WHERE sid = ?`, att.sid);
  }

  /** Entries held, for the leak checks. */
  get counts(): { subs: number; all: number; byDrone: number; throttled: number; pending: number; rows: number; held: number } {
    let pending = 0;
    for (const s of this.subs.values()) pending += s.pending.size;
    const rows = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM dashboard_subs`).one().n;
    return { subs: this.subs.size, all: this.all.size, byDrone: this.byDrone.size, throttled: this.throttled.size, pending, rows, held: this.held.length };
  }

  // ------------------------------------------------------------------ delivery

  private register(ws: WebSocket, att: DashboardAttachment, ids: readonly string[]): Sub {
    const hz = att.maxRateHz ?? 0;
    const sub: Sub = { ws, att, ids: new Set(att.subs === "list" ? ids : []), intervalMs: hz > 0 ? 1000 / hz : 0, nextAt: 0, pending: new Map(), conflated: 0 };
    this.subs.set(ws, sub);
    if (att.subs === "all") this.all.add(sub);
    for (const id of sub.ids) {
      let set = this.byDrone.get(id);
      if (!set) this.byDrone.set(id, (set = new Set()));
      set.add(sub);
    }
    return sub;
  }

  /**
   * Samples for one socket: sent now, or kept latest-wins while the socket is lagging or within
   * its throttle interval. `cache`: frames shared by the sockets of one fan-out (null: build own).
   * `fresh`: the subscription's first state, sent even inside the throttle interval.
   */
  private deliver(sub: Sub, samples: readonly TelemetrySample[], now: number, cache: FanOutCache | null, all: boolean, fresh = false): void {
    const { sockets } = this.p;
    const flow = sockets.flowOf(sub.ws);
    if (!flow) return;
    if (flow.laggingSince !== null) {
      if (flow.tooSlow(now, this.p.flowLimits())) {
        sockets.closeSlow(sub.ws);
        return;
      }
      this.keep(sub, samples, true);
      return;
    }
    if (!fresh && sub.intervalMs > 0 && now < sub.nextAt) {
      this.keep(sub, samples, false);
      this.defer(sub);
      return;
    }
    if (sub.pending.size) {
      this.keep(sub, samples, false);
      this.flush(sub, now);
      return;
    }
    this.send(sub, samples, cache, all);
    if (sub.intervalMs > 0) sub.nextAt = now + sub.intervalMs;
  }

  /** Keep the latest sample per drone. Samples of one drone arrive in rising seq order. */
  private keep(sub: Sub, samples: readonly TelemetrySample[], counting: boolean): void {
    for (const s of samples) {
      if (counting && sub.pending.has(s.drone_id)) sub.conflated++;
      sub.pending.set(s.drone_id, s);
    }
  }

  private defer(sub: Sub): void {
    if (this.throttled.has(sub)) return;
    this.throttled.add(sub);
    this.p.flushAt(sub.nextAt);
  }

  /** Send what the socket holds, in parts of ≤ 1,000 drones (frames stay well under 1 MiB). */
  private flush(sub: Sub, now: number): void {
    this.throttled.delete(sub);
    const held = [...sub.pending.values()];
    sub.pending.clear();
    for (let i = 0; i < held.length; i += LIMITS.statusChunkDrones) this.send(sub, held.slice(i, i + LIMITS.statusChunkDrones), null, false);
    if (sub.intervalMs > 0) sub.nextAt = now + sub.intervalMs;
  }

  private send(sub: Sub, samples: readonly TelemetrySample[], cache: FanOutCache | null, all: boolean): void {
    const { sockets } = this.p;
    if (sub.att.batch) {
      if (all && cache) {
        cache.allBatch ??= this.batchFrame([...samples]);
        sockets.sendRaw(sub.ws, cache.allBatch);
      } else {
        for (let i = 0; i < samples.length; i += LIMITS.statusChunkDrones) sockets.sendRaw(sub.ws, this.batchFrame(samples.slice(i, i + LIMITS.statusChunkDrones)));
      }
      return;
    }
    // Every sample to an "all" socket: the frames are built once, in order, for all of them.
    const frames = all && cache ? (cache.allFrames ??= this.updateFrames(samples)) : null;
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i]!;
      let f = frames ? frames[i] : cache?.frames.get(s);
      if (f === undefined) {
        f = this.updateFrame(s);
        cache?.frames.set(s, f);
      }
      // A send can start the lag (flow.ts): the rest then waits latest-wins.
      if (sockets.lagging(sub.ws)) {
        sub.pending.set(s.drone_id, s);
        continue;
      }
      if (!sockets.sendRaw(sub.ws, f)) return;
    }
  }

  private storeList(sid: string, ids: readonly string[]): void {
    this.sql.exec(`DELETE FROM dashboard_subs WHERE sid = ?`, sid);
    if (ids.length) this.sql.exec(`INSERT OR IGNORE INTO dashboard_subs (sid, drone_id) SELECT ?, value FROM json_each(?)`, sid, JSON.stringify(ids));
  }
}
