/**
 * Relay frames into the fleet object: the relay socket's side of the protocol (hello, telemetry
 * batches, command results, mission progress, ping). Telemetry is validated item by item, merged
 * into the live state (highest seq wins), persisted to the `drones` table in the same turn, fanned
 * out to subscribed dashboards and handed to collision avoidance and analytics. Owns the live state
 * as stored (load at start-up) and which relay serves each drone (commands go there).
 */
import type { LiveState } from "../domain/live-state";
import {
  DASHBOARD_TYPES,
  LIMITS,
  TelemetrySample,
  parseRelayMessage,
  type BatchAck,
  type ErrorCode,
  type RelayMessage,
} from "../protocol";
import type { Clock } from "./clock";
import type { CommandDesk } from "./command-desk";
import type { Coordinator } from "./collision-avoidance";
import type { FanOut } from "./fan-out";
import type { MissionStore } from "./missions";
import { refuseOtherRole, type RelayAttachment, type Sockets } from "./sockets";
import type { LinkChange, StatusBoard } from "./status";

export interface IngestPorts {
  clock: Clock;
  fleet(): string;
  live: LiveState;
  sockets: Sockets;
  fanOut: FanOut;
  status: StatusBoard;
  desk: Pick<CommandDesk, "onResult">;
  missions: Pick<MissionStore, "transition">;
  coordinator: Pick<Coordinator, "recordTrack">;
  /** The object closed the socket itself: forget it now (no close event will say so). */
  drop(ws: WebSocket): void;
  /** Analytics hook: accepted telemetry (snapshots, charging sessions). */
  accepted(samples: readonly TelemetrySample[], now: number): void;
}

export class Ingest {
  /** drone → relay_id of the relay that last reported it (commands go there). */
  private readonly relayOf = new Map<string, string>();

  constructor(
    private readonly sql: SqlStorage,
    private readonly p: IngestPorts,
  ) {}

  /** The stored live state, at object start-up; links are recomputed from the clock. */
  load(now: number): void {
    for (const row of this.sql.exec<{ sample: string; received_at: number; relay_id: string | null }>(`SELECT sample, received_at, relay_id FROM drones`)) {
      const parsed = TelemetrySample.safeParse(JSON.parse(row.sample));
      if (!parsed.success) continue;
      this.p.live.restore(parsed.data, row.received_at, now);
      if (row.relay_id) this.relayOf.set(parsed.data.drone_id, row.relay_id);
    }
  }

  /** The relay that last reported a drone, by relay_id. */
  relayOfDrone(droneId: string): string | undefined {
    return this.relayOf.get(droneId);
  }

  /** One frame from a relay socket. Returns true when telemetry was accepted. */
  onFrame(ws: WebSocket, att: RelayAttachment, message: string | ArrayBuffer): boolean {
    const { sockets } = this.p;
    if (typeof message !== "string") {
      sockets.toRelay(ws, { type: "error", code: "binary_not_supported", message: "send JSON text frames" });
      return false;
    }
    if (message.length > LIMITS.relayFrameBytes) {
      ws.close(1009, `frame larger than ${LIMITS.relayFrameBytes} bytes`);
      this.p.drop(ws);
      return false;
    }
    const parsed = parseRelayMessage(message);
    if (!parsed.ok) {
      sockets.toRelay(ws, refuseOtherRole(parsed.error, "dashboard", DASHBOARD_TYPES));
      return false;
    }
    return this.handle(ws, att, parsed.value);
  }

  private handle(ws: WebSocket, att: RelayAttachment, msg: RelayMessage): boolean {
    const { sockets, clock } = this.p;
    switch (msg.type) {
      case "relay_hello":
        // A relay that reconnects before its old socket timed out replaces it.
        sockets.claimRelayId(ws, att, msg.relay_id);
        sockets.toRelay(ws, { type: "hello_ack", fleet: this.p.fleet(), last_seq: this.p.live.lastSeq() });
        return false;
      case "telemetry_batch": {
        const { ack, accepted } = this.ingest(att, msg.batch_id, msg.updates);
        sockets.toRelay(ws, ack);
        return accepted;
      }
      case "command_result":
        // Acknowledge even a late or repeated result so the relay can drop it from its outbox.
        this.p.desk.onResult(msg.command_id, msg.status, msg.message);
        sockets.toRelay(ws, { type: "command_result_ack", command_id: msg.command_id });
        return false;
      case "mission_progress": {
        const m = this.p.missions.transition(msg.mission_id, msg.state, clock.now(), { waypointIndex: msg.waypoint_index, message: msg.message });
        if (m) {
          sockets.broadcast({
            type: "mission_update",
            drone_id: msg.drone_id,
            update: { type: "mission_status", drone_id: msg.drone_id, mission_id: msg.mission_id, status: m.status, timestamp: new Date(msg.ts).toISOString(), ...(msg.message ? { message: msg.message } : {}) },
          });
        }
        return false;
      }
      case "ping":
        sockets.toRelay(ws, { type: "pong", request_id: msg.request_id, ts: clock.now() });
        return false;
      default: {
        const never: never = msg;
        throw new Error(`unhandled relay message ${JSON.stringify(never)}`);
      }
    }
  }

  /** Validate item by item, persist and fan out what is new; report the rest. */
  private ingest(att: RelayAttachment, batchId: number, updates: readonly unknown[]): { ack: BatchAck; accepted: boolean } {
    const now = this.p.clock.now();
    const ack: BatchAck = { type: "batch_ack", batch_id: batchId, accepted: 0, duplicates: 0, rejected: 0, errors: [] };
    const accepted: TelemetrySample[] = [];
    const backLive: LinkChange[] = [];
    const reject = (index: number, code: ErrorCode, message: string) => {
      ack.rejected++;
      if (ack.errors.length < LIMITS.batchAckErrors) ack.errors.push({ index, code, message });
    };
    for (let i = 0; i < updates.length; i++) {
      const r = TelemetrySample.safeParse(updates[i]);
      if (!r.success) {
        reject(i, "invalid_item", r.error.issues.slice(0, 2).map((x) => `${x.path.join(".")}: ${x.message}`).join("; "));
        continue;
      }
      const { outcome, becameLive } = this.p.live.ingest(r.data, now);
      if (outcome === "duplicate") ack.duplicates++;
      else if (outcome === "too_many_drones") reject(i, "too_many_drones", `fleet is limited to ${LIMITS.dronesPerFleet} drones`);
      else {
        ack.accepted++;
        accepted.push(r.data);
        this.p.coordinator.recordTrack(r.data.drone_id, { t: now, lat: r.data.lat, lon: r.data.lon, alt_m: r.data.alt_m });
        if (becameLive) backLive.push({ id: r.data.drone_id, state: "live", lastSeen: now });
      }
    }
    this.p.status.announceLinks(backLive, now);
    if (accepted.length) {
      // Fan out before writing: the output gate holds messages sent after a storage write until
      // the write is durable, and live telemetry should not wait for that. The relay's
      // batch_ack is sent after the write, so the relay only forgets what is durable here.
      this.p.fanOut.telemetry(accepted);
      this.persist(accepted, now, att.relayId ?? att.sub);
      this.p.accepted(accepted, now);
    }
    return { ack, accepted: accepted.length > 0 };
  }

  /**
   * One statement per relay frame, not per update: the samples go in as one JSON array and
   * SQLite unpacks it. Per-statement cost dominated ingest when each update had its own upsert.
   * Samples of one drone arrive in rising seq order, so the last row for a drone wins.
   */
  private persist(samples: readonly TelemetrySample[], now: number, relayId: string): void {
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
}
