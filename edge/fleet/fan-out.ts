/**
 * Telemetry to dashboards: each dashboard's subscription (none, every drone, or a list; one frame
 * per update or one `telemetry_batch` per relay frame), kept in the socket attachment so it
 * survives eviction, and the fan-out of accepted updates to the subscribers, each update
 * serialised once however many dashboards receive it.
 */
import type { LiveState } from "../domain/live-state";
import type { DashboardMessage, TelemetryBatchFrame, TelemetryFrame, TelemetrySample } from "../protocol";
import { isDashboard, type DashboardConn, type Sockets } from "./sockets";

type SubscribeTelemetry = Extract<DashboardMessage, { type: "subscribe_telemetry" }>;
type UnsubscribeTelemetry = Extract<DashboardMessage, { type: "unsubscribe_telemetry" }>;

/** Frames built once per ingested batch and shared by every dashboard. */
type FanOutCache = { frames: string[] | null; allBatch: string | null };

export class FanOut {
  constructor(
    private readonly sockets: Sockets,
    private readonly live: LiveState,
  ) {}

  /** Accepted updates to every subscribed dashboard. */
  telemetry(samples: readonly TelemetrySample[]): void {
    const cache: FanOutCache = { frames: null, allBatch: null };
    for (const ws of this.sockets.dashboards()) {
      const conn = this.sockets.conn(ws);
      if (conn && isDashboard(conn)) this.to(ws, conn, samples, cache);
    }
  }

  /** Replaces the subscription: idempotent, so a client that reconnects simply sends it again. */
  subscribe(ws: WebSocket, conn: DashboardConn, msg: SubscribeTelemetry): void {
    const att = conn.att;
    att.subs = msg.drone_ids === "all" ? "all" : [...new Set(msg.drone_ids)];
    conn.subSet = att.subs === "all" ? null : new Set(att.subs);
    if (msg.batch !== undefined) att.batch = msg.batch;
    this.sockets.save(ws, att);
    this.sockets.toDashboard(ws, { type: "subscribed", request_id: msg.request_id, drone_ids: att.subs, batch: att.batch });
    // The latest state of every subscribed drone, so the view is complete at once.
    const ids = att.subs === "all" ? [...this.live.ids()] : att.subs;
    const current = ids.flatMap((id) => {
      const rec = this.live.get(id);
      return rec ? [rec.sample] : [];
    });
    if (current.length) this.to(ws, conn, current);
  }

  unsubscribe(ws: WebSocket, conn: DashboardConn, msg: UnsubscribeTelemetry): void {
    const att = conn.att;
    if (msg.drone_ids === undefined || msg.drone_ids === "all") {
      att.subs = null;
    } else {
      // From "all", removing some drones leaves an explicit list of the others known now.
      const next = new Set(att.subs === "all" ? this.live.ids() : (att.subs ?? []));
      for (const id of msg.drone_ids) next.delete(id);
      att.subs = next.size ? [...next] : null;
    }
    conn.subSet = Array.isArray(att.subs) ? new Set(att.subs) : null;
    this.sockets.save(ws, att);
    this.sockets.toDashboard(ws, { type: "subscribed", request_id: msg.request_id, drone_ids: att.subs ?? [], batch: att.batch });
  }

  private to(ws: WebSocket, conn: DashboardConn, samples: readonly TelemetrySample[], cache: FanOutCache = { frames: null, allBatch: null }): void {
    const { att, subSet } = conn;
    if (att.subs === null) return;
    const wanted = (s: TelemetrySample) => att.subs === "all" || subSet!.has(s.drone_id);
    const batch = (updates: TelemetrySample[]) => JSON.stringify({ type: "telemetry_batch", updates } satisfies TelemetryBatchFrame);
    if (att.batch) {
      if (att.subs === "all") {
        cache.allBatch ??= batch([...samples]);
        this.sockets.sendRaw(ws, cache.allBatch);
      } else {
        const mine = samples.filter(wanted);
        if (mine.length) this.sockets.sendRaw(ws, batch(mine));
      }
      return;
    }
    const frames = (cache.frames ??= samples.map((s) => JSON.stringify({ type: "telemetry", ...s } satisfies TelemetryFrame)));
    for (let i = 0; i < samples.length; i++) if (wanted(samples[i]!)) this.sockets.sendRaw(ws, frames[i]!);
  }
}
