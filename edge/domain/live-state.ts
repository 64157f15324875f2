/**
 * Latest-wins live state of one fleet's drones: pure data in, data out, no runtime APIs, so it is
 * unit-testable anywhere and the Durable Object stays a thin shell around it.
 */
import { LIMITS, type DroneState, type FleetStatus, type TelemetrySample } from "../protocol";
import { isAirborne } from "./drone";

export type Link = "live" | "stale";
export type DroneRecord = { sample: TelemetrySample; receivedAt: number; link: Link };
export type IngestOutcome = "accepted" | "duplicate" | "too_many_drones";

export class LiveState {
  private readonly drones = new Map<string, DroneRecord>();

  constructor(private readonly staleAfterMs: number = LIMITS.staleAfterMs) {}

  get size(): number {
    return this.drones.size;
  }

  has(droneId: string): boolean {
    return this.drones.has(droneId);
  }

  get(droneId: string): DroneRecord | undefined {
    return this.drones.get(droneId);
  }

  records(): IterableIterator<DroneRecord> {
    return this.drones.values();
  }

  ids(): IterableIterator<string> {
    return this.drones.keys();
  }

  /** Load a persisted record (object start-up); link is recomputed from the clock. */
  restore(sample: TelemetrySample, receivedAt: number, now: number): void {
    this.drones.set(sample.drone_id, { sample, receivedAt, link: this.linkAt(receivedAt, now) });
  }

  /**
   * Accept a sample only if its seq is higher than the one held: duplicates and frames that
   * arrive out of order (after a reconnect, a replayed outbox) never overwrite newer state.
   * `becameLive` is true when a stale drone is heard from again (a new drone is not a link
   * change: dashboards learn of it from its telemetry and the next fleet_status).
   */
  ingest(sample: TelemetrySample, now: number): { outcome: IngestOutcome; becameLive: boolean } {
    const prev = this.drones.get(sample.drone_id);
    if (prev) {
      if (sample.seq <= prev.sample.seq) return { outcome: "duplicate", becameLive: false };
      const becameLive = prev.link === "stale";
      prev.sample = sample;
      prev.receivedAt = now;
      prev.link = "live";
      return { outcome: "accepted", becameLive };
    }
    if (this.drones.size >= LIMITS.dronesPerFleet) return { outcome: "too_many_drones", becameLive: false };
    this.drones.set(sample.drone_id, { sample, receivedAt: now, link: "live" });
    return { outcome: "accepted", becameLive: false };
  }

  /** Mark drones silent for longer than the stale bound; returns those that just went stale. */
  sweepStale(now: number): DroneRecord[] {
    const changed: DroneRecord[] = [];
    for (const rec of this.drones.values()) {
      if (rec.link === "live" && this.linkAt(rec.receivedAt, now) === "stale") {
        rec.link = "stale";
        changed.push(rec);
      }
    }
    return changed;
  }

  /** Highest seq held per drone, sent to a relay in hello_ack. */
  lastSeq(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [id, rec] of this.drones) out[id] = rec.sample.seq;
    return out;
  }

  anyLive(): boolean {
    for (const rec of this.drones.values()) if (rec.link === "live") return true;
    return false;
  }

  /** Whether any live drone is in the air (drone.ts): collision detection runs only then. */
  anyAirborne(): boolean {
    for (const rec of this.drones.values()) if (rec.link === "live" && isAirborne(rec.sample)) return true;
    return false;
  }

  /** Snapshot for `fleet_status`, drones sorted by id for stable output. */
  status(fleet: string, relayConnected: boolean, now: number): FleetStatus {
    const drones: DroneState[] = [];
    const counts = { total: 0, live: 0, stale: 0, armed: 0, flying: 0, charging: 0 };
    for (const rec of this.drones.values()) {
      const link = this.linkAt(rec.receivedAt, now);
      drones.push({ ...rec.sample, received_at: rec.receivedAt, link });
      counts.total++;
      if (link === "live") counts.live++;
      else counts.stale++;
      if (rec.sample.armed) counts.armed++;
      // `flying` counts the drones in the air, by the one airborne rule (drone.ts).
      if (isAirborne(rec.sample)) counts.flying++;
      if (rec.sample.status === "charging") counts.charging++;
    }
    drones.sort((a, b) => (a.drone_id < b.drone_id ? -1 : a.drone_id > b.drone_id ? 1 : 0));
    return { type: "fleet_status", fleet, ts: now, relay_connected: relayConnected, counts, drones };
  }

  private linkAt(receivedAt: number, now: number): Link {
    return now - receivedAt > this.staleAfterMs ? "stale" : "live";
  }
}
