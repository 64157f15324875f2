/**
 * What dashboards are told about the fleet as a whole: `fleet_status` (every drone's latest state,
 * counts, relay state, active coordination events), split into parts of at most 1,000 drones so no
 * frame nears the 1 MiB message limit; `link_status` for relays coming and going and for drones
 * going stale or coming back, collapsed into one fleet_status when many change at once.
 */
import type { LiveState } from "../domain/live-state";
import { LIMITS, type CoordinationEventView, type FleetStatus, type LinkStatus } from "../protocol";
import type { Spans } from "./profile";
import type { Sockets } from "./sockets";

const FLEET_STATUS_CHUNK = LIMITS.statusChunkDrones;
/** Above this many link changes at once, dashboards get one fleet_status instead of link_status frames. */
export const LINK_FRAMES_MAX = 20;

export type LinkChange = { id: string; state: "live" | "stale"; lastSeen: number };

export interface StatusSources {
  fleet(): string;
  live: LiveState;
  sockets: Sockets;
  activeEvents(): CoordinationEventView[];
  spans: Spans;
}

export class StatusBoard {
  constructor(private readonly src: StatusSources) {}

  snapshot(now: number): FleetStatus {
    const { fleet, live, sockets } = this.src;
    return { ...live.status(fleet(), sockets.relayCount > 0, now), coordination_events: this.src.activeEvents() };
  }

  /** fleet_status as serialised frames: one, or parts of ≤ FLEET_STATUS_CHUNK drones. */
  frames(now: number): string[] {
    const st = this.snapshot(now);
    if (st.drones.length <= FLEET_STATUS_CHUNK) return [JSON.stringify(st)];
    const parts = Math.ceil(st.drones.length / FLEET_STATUS_CHUNK);
    const out: string[] = [];
    for (let p = 0; p < parts; p++) {
      const part: FleetStatus = { ...st, part: p + 1, parts, drones: st.drones.slice(p * FLEET_STATUS_CHUNK, (p + 1) * FLEET_STATUS_CHUNK) };
      out.push(JSON.stringify(part));
    }
    return out;
  }

  /** The status to one dashboard (a new socket). */
  sendTo(ws: WebSocket, now: number): void {
    this.src.sockets.hooks.beforeFrames();
    for (const f of this.frames(now)) this.src.sockets.sendRaw(ws, f);
  }

  /** fleet_status to every dashboard but those lagging (flow.ts): a lagging page gets the next
   * one after it caught up rather than another big frame it cannot read. */
  broadcast(now: number): void {
    const sockets = this.src.sockets.dashboards().filter((ws) => !this.src.sockets.lagging(ws));
    if (!sockets.length) return;
    this.src.sockets.hooks.beforeFrames();
    const frames = this.frames(now);
    for (const ws of sockets) for (const f of frames) this.src.sockets.sendRaw(ws, f);
  }

  /**
   * Per-drone link changes. When many drones change at once (a relay back after an outage),
   * one fleet_status replaces hundreds of link_status frames per dashboard.
   */
  announceLinks(changes: readonly LinkChange[], now: number): void {
    if (!changes.length) return;
    this.src.spans.span("status", () => {
      if (changes.length > LINK_FRAMES_MAX) {
        this.broadcast(now);
        return;
      }
      for (const c of changes) {
        this.src.sockets.broadcast({ type: "link_status", scope: "drone", drone_id: c.id, state: c.state, ts: now, last_seen: c.lastSeen });
      }
    });
  }

  /** The 5 s status tick: mark silent drones stale, tell dashboards, send everyone the status. */
  tick(now: number): void {
    const stale = this.src.live.sweepStale(now).map((rec): LinkChange => ({ id: rec.sample.drone_id, state: "stale", lastSeen: rec.receivedAt }));
    // The status that follows carries every drone's link anyway; per-drone frames only when few changed.
    if (stale.length <= LINK_FRAMES_MAX) this.announceLinks(stale, now);
    this.broadcast(now);
  }

  relayLink(state: "up" | "down", now: number): void {
    const frame: LinkStatus = { type: "link_status", scope: "relay", state, ts: now, relays: this.src.sockets.relayCount };
    this.src.sockets.broadcast(frame);
  }
}
