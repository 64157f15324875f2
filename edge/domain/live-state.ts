/**
 * Latest-wins live state of one fleet's drones: pure data in, data out, no runtime APIs, so it is
 * unit-testable anywhere and the Durable Object stays a thin shell around it.
 */
import { LIMITS, SEQ_MAX, TS_MAX_AHEAD_MS, type DroneState, type FleetStatus, type TelemetrySample } from "../protocol";
import { isAirborne } from "./drone";

export type Link = "live" | "stale";
/**
 * `seqFloor`: the seq a new sample must beat, normally the held sample's own; -1 after an admin
 * gave the drone to another relay (whose counter is its own), so its next sample counts.
 */
export type DroneRecord = { sample: TelemetrySample; receivedAt: number; link: Link; seqFloor?: number };
export type IngestOutcome = "accepted" | "duplicate" | "too_many_drones" | RangeRefusal;
export type RangeRefusal = "seq_out_of_range" | "ts_out_of_range";

/**
 * Samples no sane relay sends: a seq beyond SEQ_MAX (it would become a high-water mark no honest
 * sample can pass) or a timestamp more than a day ahead of the edge's clock. Refused, never stored.
 */
export function sampleOutOfRange(sample: { seq: number; ts: number }, now: number): RangeRefusal | null {
  if (!(sample.seq <= SEQ_MAX)) return "seq_out_of_range";
  if (!(sample.ts <= now + TS_MAX_AHEAD_MS)) return "ts_out_of_range";
  return null;
}

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

  /**
   * Load a persisted record (object start-up); link is recomputed from the clock. `seqFloor`: the
   * stored seq column when it is below the sample's (a reassigned drone, see resetSeq). A record
   * whose seq is beyond SEQ_MAX (stored before that rule) is not loaded: it would freeze the drone.
   */
  restore(sample: TelemetrySample, receivedAt: number, now: number, seqFloor = sample.seq): boolean {
    if (sample.seq > SEQ_MAX) return false;
    const rec: DroneRecord = { sample, receivedAt, link: this.linkAt(receivedAt, now) };
    if (seqFloor < sample.seq) rec.seqFloor = seqFloor;
    this.drones.set(sample.drone_id, rec);
    return true;
  }

  /** The drone's next sample counts whatever its seq (it now comes from another relay's counter). */
  resetSeq(droneId: string): boolean {
    const rec = this.drones.get(droneId);
    if (!rec) return false;
    rec.seqFloor = -1;
    return true;
  }

  /**
   * Accept a sample only if its seq is higher than the one held: duplicates and frames that
   * arrive out of order (after a reconnect, a replayed outbox) never overwrite newer state.
   * `becameLive` is true when a stale drone is heard from again (a new drone is not a link
   * change: dashboards learn of it from its telemetry and the next fleet_status).
   */
  ingest(sample: TelemetrySample, now: number): { outcome: IngestOutcome; becameLive: boolean } {
    const refused = sampleOutOfRange(sample, now);
    if (refused) return { outcome: refused, becameLive: false };
    const prev = this.drones.get(sample.drone_id);
    if (prev) {
      if (sample.seq <= (prev.seqFloor ?? prev.sample.seq)) return { outcome: "duplicate", becameLive: false };
      const becameLive = prev.link === "stale";
      prev.sample = sample;
      prev.receivedAt = now;
      prev.link = "live";
      delete prev.seqFloor;
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

  /**
   * Highest seq held per drone (the one a new sample must beat), sent to a relay in hello_ack;
   * only the drones `include` says (a relay learns about its own drones). A null-prototype object:
   * drone ids are the relay's strings, and `constructor` or `toString` must be plain keys.
   */
  lastSeq(include: (droneId: string) => boolean = () => true): Record<string, number> {
    const out = Object.create(null) as Record<string, number>;
    for (const [id, rec] of this.drones) if (include(id)) out[id] = Math.max(0, rec.seqFloor ?? rec.sample.seq);
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
