/**
 * Relay frames into the fleet object: the relay socket's side of the protocol (hello, telemetry
 * batches, command results, mission progress, ping). Telemetry is validated item by item, merged
 * into the live state (highest seq wins), fanned out to subscribed dashboards, handed to collision
 * avoidance and analytics, and written to the `drones` table: in the frame's own turn, or under
 * heavy load together with every frame of up to PERSIST.coalesceMs (saveLiveState). Owns the live
 * state as stored (load at start-up).
 *
 * Trust (issue 18, rules in edge/protocol/relay.ts): nothing but relay_hello (or ping) is taken
 * before the hello; the hello's relay_id must be the token subject's (relay-registry.ts); each
 * telemetry item must be for a drone the relay owns or may take, within the subject's new-drone
 * allowance, with a seq and ts in range; a command_result or mission_progress counts only from
 * the relay the command or the mission's command was sent to, with a ts in range.
 */
import { sampleOutOfRange, type LiveState } from "../domain/live-state";
import {
  CLOSE_CODES,
  DASHBOARD_TYPES,
  LIMITS,
  SEQ_MAX,
  TS_MAX_AHEAD_MS,
  TelemetrySample,
  parseRelayMessage,
  parseTelemetrySample,
  intentOf,
  type BatchAck,
  type ErrorCode,
  type RelayMessage,
} from "../protocol";
import type { Clock } from "./clock";
import type { CommandDesk } from "./command-desk";
import type { Coordinator } from "./collision-avoidance";
import type { FanOut } from "./fan-out";
import type { MissionStore } from "./missions";
import type { Spans } from "./profile";
import type { RelayRegistry } from "./relay-registry";
import { refuseOtherRole, type RelayAttachment, type Sockets } from "./sockets";
import type { LinkChange, StatusBoard } from "./status";

/**
 * When the live state is written. Below `everyFrameBelowPerS` accepted samples per second (1,000
 * drones at 5 Hz) every frame is written in its own turn, before its batch_ack and before the next
 * frame: what a restart brings back is then everything acknowledged, and no dashboard sees a
 * drone's seq go back after it. Above, frames share one write at most every `coalesceMs`, which
 * stores each drone's latest sample once: at 40 samples per drone and second, 5 row writes
 * instead of 40 (each write rewrites most of the table's pages; per frame it was half the
 * object's time at 40,000/s). A restart then brings a drone back with a sample up to `coalesceMs`
 * older than the last acknowledged, until its next sample. What analytics keeps of a sample
 * (snapshots, events) is always written in the frame's own turn, before its batch_ack.
 */
export interface PersistPolicy {
  everyFrameBelowPerS: number;
  coalesceMs: number;
}
export const PERSIST: PersistPolicy = { everyFrameBelowPerS: 5_000, coalesceMs: 200 };

export interface IngestPorts {
  clock: Clock;
  fleet(): string;
  live: LiveState;
  sockets: Sockets;
  fanOut: FanOut;
  status: StatusBoard;
  desk: Pick<CommandDesk, "onResult">;
  missions: Pick<MissionStore, "transition" | "get">;
  coordinator: Pick<Coordinator, "recordTrack" | "recordIntent" | "relayConnected">;
  relays: RelayRegistry;
  /** The new-drone allowance per token subject and minute (for the refusal message). */
  newDronesPerMinute: number;
  /** The relay_id a command was sent to: undefined when there is no such command, null when it was never sent. */
  commandRelay(commandId: string): string | null | undefined;
  /** Analytics hook: accepted telemetry (snapshots, charging sessions). */
  accepted(samples: readonly TelemetrySample[], now: number): void;
  /** Run `fn` in its own turn `ms` from now (the deferred live-state write). */
  later(fn: () => void, ms: number): void;
  /** PERSIST (tests lower the threshold to see coalescing at a test's rates). */
  persist(): PersistPolicy;
  spans: Spans;
}

/** A drone's sample that the `drones` table does not hold yet, as the deferred write stores it. */
interface Unsaved {
  s: TelemetrySample;
  /** received_at */
  at: number;
  /** relay_id */
  r: string;
}

export class Ingest {
  private readonly spans: Spans;
  /** Latest accepted sample per drone not yet written; insertion order is arrival order. */
  private readonly unsaved = new Map<string, Unsaved>();
  /** Drones of `unsaved` that have no row yet. */
  private readonly unsavedNew = new Set<string>();
  private lastWriteAt = -Infinity;
  private writeSet = false;
  /** Accepted samples in the current and the previous second (the rate PERSIST is judged on). */
  private rate = { second: 0, current: 0, previous: 0 };

  constructor(
    private readonly sql: SqlStorage,
    private readonly p: IngestPorts,
  ) {
    this.spans = p.spans;
  }

  /**
   * The stored live state, at object start-up; links are recomputed from the clock. A stored
   * sample beyond SEQ_MAX (kept by code before that rule) is deleted: it would freeze its drone.
   */
  load(now: number): void {
    const frozen: string[] = [];
    for (const row of this.sql.exec<{ drone_id: string; seq: number; sample: string; received_at: number }>(`SELECT drone_id, seq, sample, received_at FROM drones`)) {
      const parsed = TelemetrySample.safeParse(JSON.parse(row.sample));
      if (!parsed.success) continue;
      if (!this.p.live.restore(parsed.data, row.received_at, now, row.seq)) frozen.push(row.drone_id);
    }
    if (frozen.length) this.sql.exec(`DELETE FROM drones WHERE drone_id IN (SELECT value FROM json_each(?))`, JSON.stringify(frozen));
  }

  /** One frame from a relay socket. Returns true when telemetry was accepted. */
  onFrame(ws: WebSocket, att: RelayAttachment, message: string | ArrayBuffer): boolean {
    const { sockets } = this.p;
    if (typeof message !== "string") {
      sockets.toRelay(ws, { type: "error", code: "binary_not_supported", message: "send JSON text frames" });
      return false;
    }
    if (message.length > LIMITS.relayFrameBytes) {
      sockets.close(ws, 1009, `frame larger than ${LIMITS.relayFrameBytes} bytes`);
      return false;
    }
    const parsed = this.spans.span("parse", () => parseRelayMessage(message));
    if (!parsed.ok) {
      sockets.toRelay(ws, refuseOtherRole(parsed.error, "dashboard", DASHBOARD_TYPES));
      return false;
    }
    const msg = parsed.value;
    // Before its hello a socket speaks for no relay: nothing it sends is applied.
    if (att.relayId === null && msg.type !== "relay_hello" && msg.type !== "ping") {
      sockets.toRelay(ws, { type: "error", code: "hello_required", message: `send relay_hello first; ${msg.type} before it is refused and nothing was applied` });
      return false;
    }
    return this.handle(ws, att, msg);
  }

  private handle(ws: WebSocket, att: RelayAttachment, msg: RelayMessage): boolean {
    const { sockets, clock } = this.p;
    switch (msg.type) {
      case "relay_hello":
        this.hello(ws, att, msg);
        return false;
      case "telemetry_batch": {
        const { ack, accepted } = this.ingest(att, att.relayId!, msg.batch_id, msg.updates);
        sockets.toRelay(ws, ack);
        return accepted;
      }
      case "command_result": {
        const sentTo = this.p.commandRelay(msg.command_id);
        if (sentTo !== undefined && sentTo !== att.relayId) {
          // Not acknowledged: this relay holds nothing the edge wants from it.
          sockets.toRelay(ws, { type: "error", code: "not_your_command", message: `command ${msg.command_id} was not sent to relay ${att.relayId}; its result is not taken from it` });
          return false;
        }
        // Acknowledge even a late, repeated or unknown result so the relay can drop it from its outbox.
        this.spans.span("commands", () => this.p.desk.onResult(msg.command_id, msg.status, msg.message));
        sockets.toRelay(ws, { type: "command_result_ack", command_id: msg.command_id });
        return false;
      }
      case "mission_progress": {
        const now = clock.now();
        if (msg.ts > now + TS_MAX_AHEAD_MS) {
          sockets.toRelay(ws, { type: "error", code: "ts_out_of_range", message: `mission_progress ts ${msg.ts} is more than ${TS_MAX_AHEAD_MS / 3_600_000} h ahead of the edge's clock; not applied` });
          return false;
        }
        const mission = this.p.missions.get(msg.mission_id);
        if (mission && (mission.drone_id !== msg.drone_id || this.p.commandRelay(mission.command_id) !== att.relayId)) {
          sockets.toRelay(ws, { type: "error", code: "not_your_command", message: `mission ${msg.mission_id} of drone ${mission.drone_id} was not sent to relay ${att.relayId} for ${msg.drone_id}; its progress is not taken from it` });
          return false;
        }
        const m = this.spans.span("commands", () => this.p.missions.transition(msg.mission_id, msg.state, now, { waypointIndex: msg.waypoint_index, message: msg.message }));
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

  /**
   * relay_hello: bind the relay_id to the token subject (or refuse it, 4003), replace an older
   * socket of the same relay, and answer with the seqs the edge holds for the drones it may report:
   * those it owns, and those nobody holds (new, or their relay gone for longer than the stale bound).
   */
  private hello(ws: WebSocket, att: RelayAttachment, msg: Extract<RelayMessage, { type: "relay_hello" }>): void {
    const { sockets, clock, relays } = this.p;
    const now = clock.now();
    if (att.relayId !== null && att.relayId !== msg.relay_id) {
      sockets.toRelay(ws, { type: "error", code: "forbidden", message: `this socket speaks for relay ${att.relayId}; open another socket for ${msg.relay_id}` });
      return;
    }
    if (!relays.hello(msg.relay_id, att.sub, now).ok) {
      sockets.toRelay(ws, { type: "error", code: "relay_id_taken", message: `relay_id ${msg.relay_id} belongs to another token subject; an admin can release it` });
      sockets.close(ws, CLOSE_CODES.relayIdTaken, "relay_id belongs to another token subject");
      return;
    }
    // A relay that reconnects before its old socket timed out replaces it.
    sockets.claimRelayId(ws, att, msg.relay_id);
    // A relay (re)connecting may have restarted its drones' routes: stored plans no longer hold.
    this.p.coordinator.relayConnected(msg.drone_ids, now);
    const lastSeq = this.p.live.lastSeq((id) => relays.mayTake(id, msg.relay_id, now));
    sockets.toRelay(ws, { type: "hello_ack", fleet: this.p.fleet(), last_seq: lastSeq });
  }

  /** Validate item by item, persist and fan out what is new; report the rest. */
  private ingest(att: RelayAttachment, relayId: string, batchId: number, updates: readonly unknown[]): { ack: BatchAck; accepted: boolean } {
    const now = this.p.clock.now();
    const ack: BatchAck = { type: "batch_ack", batch_id: batchId, accepted: 0, duplicates: 0, rejected: 0, errors: [] };
    const accepted: TelemetrySample[] = [];
    const backLive: LinkChange[] = [];
    const reject = (index: number, code: ErrorCode, message: string) => {
      ack.rejected++;
      if (ack.errors.length < LIMITS.batchAckErrors) ack.errors.push({ index, code, message });
    };
    // Drones new to the fleet: their rows do not exist yet (persist inserts them).
    const fresh = new Set<string>();
    this.spans.span("validate", () => this.items(att, relayId, updates, now, ack, accepted, backLive, reject, fresh));
    this.p.status.announceLinks(backLive, now);
    if (accepted.length) {
      // Fan out before writing: the output gate holds messages sent after a storage write until
      // the write is durable, and live telemetry should not wait for that.
      const json = this.spans.span("fanout_serialise", () => JSON.stringify(accepted));
      this.p.fanOut.telemetry(accepted, json);
      this.spans.span("persistence", () => this.persist(accepted, json, now, relayId, fresh));
      this.spans.span("analytics", () => this.p.accepted(accepted, now));
    }
    return { ack, accepted: accepted.length > 0 };
  }

  /** Each item: validated (time: "validate"), then merged into the live state ("live_state"). */
  private items(
    att: RelayAttachment,
    relayId: string,
    updates: readonly unknown[],
    now: number,
    ack: BatchAck,
    accepted: TelemetrySample[],
    backLive: LinkChange[],
    reject: (index: number, code: ErrorCode, message: string) => void,
    fresh: Set<string>,
  ): void {
    const { relays } = this.p;
    for (let i = 0; i < updates.length; i++) {
      const r = parseTelemetrySample(updates[i]);
      if (!r.success) {
        reject(i, "invalid_item", r.error.issues.slice(0, 2).map((x) => `${x.path.join(".")}: ${x.message}`).join("; "));
        continue;
      }
      const id = r.data.drone_id;
      // Range first: a sample refused for its seq or ts costs no new-drone allowance.
      const range = sampleOutOfRange(r.data, now);
      if (range === "seq_out_of_range") {
        reject(i, range, `seq ${r.data.seq} is beyond ${SEQ_MAX}; it would freeze ${id}, refused`);
        continue;
      }
      if (range === "ts_out_of_range") {
        reject(i, range, `ts ${r.data.ts} is more than ${TS_MAX_AHEAD_MS / 3_600_000} h ahead of the edge's clock, refused`);
        continue;
      }
      const isNew = !this.p.live.has(id);
      if (isNew) fresh.add(id);
      const verdict = relays.check(id, relayId, att.sub, isNew, now);
      if (verdict === "not_owner") {
        reject(i, verdict, `drone ${id} belongs to relay ${relays.ownerOf(id)}; refused from relay ${relayId}`);
        continue;
      }
      if (verdict === "too_many_new_drones") {
        reject(i, verdict, `this relay token may add ${this.p.newDronesPerMinute} new drones per minute; ${id} refused, send it again later`);
        continue;
      }
      const sample = r.data;
      const raw = updates[i];
      this.spans.span("live_state", () => {
        const { outcome, becameLive } = this.p.live.ingest(sample, now);
        if (outcome === "duplicate") ack.duplicates++;
        else if (outcome === "too_many_drones") reject(i, "too_many_drones", `fleet is limited to ${LIMITS.dronesPerFleet} drones`);
        else if (outcome !== "accepted") reject(i, outcome, `${id} refused: ${outcome}`);
        else {
          relays.own(id, relayId);
          ack.accepted++;
          accepted.push(sample);
          this.p.coordinator.recordTrack(sample.drone_id, { t: now, lat: sample.lat, lon: sample.lon, alt_m: sample.alt_m });
          this.p.coordinator.recordIntent(sample.drone_id, intentOf(raw), now, { heading_deg: sample.heading_deg, speed_mps: sample.speed_mps, climb_mps: sample.climb_mps });
          if (becameLive) backLive.push({ id: sample.drone_id, state: "live", lastSeen: now });
        }
      });
    }
  }

  /** A deferred live-state write is waiting for its timer. */
  get writePending(): boolean {
    return this.writeSet;
  }

  /** Remember the frame's samples for the next live-state write, and write now unless PERSIST says wait. */
  private persist(samples: readonly TelemetrySample[], samplesJson: string, now: number, relayId: string, fresh: ReadonlySet<string>): void {
    const t = performance.now();
    const policy = this.p.persist();
    const rate = this.samplesPerSecond(t, samples.length);
    // Nothing waits unless a write is set (saveLiveState empties both): the frame goes as it is,
    // from the JSON its fan-out sent.
    if (!this.writeSet && (rate < policy.everyFrameBelowPerS || t - this.lastWriteAt >= policy.coalesceMs)) {
      this.lastWriteAt = t;
      this.writeFrame(samples, samplesJson, now, relayId, fresh.size > 0);
      return;
    }
    // A drone twice in one frame, or in several frames before a write: its last (highest-seq) sample wins.
    for (const s of samples) this.unsaved.set(s.drone_id, { s, at: now, r: relayId });
    for (const id of fresh) this.unsavedNew.add(id);
    if (this.writeSet) return;
    this.writeSet = true;
    this.p.later(() => this.spans.span("persistence", () => this.saveLiveState()), this.lastWriteAt + policy.coalesceMs - t);
  }

  /**
   * One frame's samples, in one UPDATE … FROM over the frame's JSON array, and an INSERT for drones
   * without a row. A drone twice in the frame keeps its last sample: the frame is then stored from
   * its own de-duplicated array, since UPDATE … FROM would take any.
   */
  private writeFrame(samples: readonly TelemetrySample[], samplesJson: string, now: number, relayId: string, anyNew: boolean): void {
    let json = samplesJson;
    let unique = samples.length;
    const last = new Map<string, TelemetrySample>();
    for (const s of samples) last.set(s.drone_id, s);
    if (last.size < samples.length) {
      unique = last.size;
      json = JSON.stringify([...last.values()]);
    }
    const updated = this.sql.exec(
      `UPDATE drones SET seq = j.value ->> 'seq', received_at = ?, sample = j.value, relay_id = ?
       FROM json_each(?) AS j WHERE drones.drone_id = j.value ->> 'drone_id'`,
      now,
      relayId,
      json,
    ).rowsWritten;
    if (!anyNew && updated >= unique) return;
    this.sql.exec(
      `INSERT INTO drones (drone_id, seq, received_at, sample, relay_id)
       SELECT value ->> 'drone_id', value ->> 'seq', ?, value, ? FROM json_each(?) WHERE true
       ON CONFLICT (drone_id) DO NOTHING`,
      now,
      relayId,
      json,
    );
  }

  /** Count `n` accepted samples at `t` (ms); the rate over the last second, the previous one pro rata. */
  private samplesPerSecond(t: number, n: number): number {
    const second = Math.floor(t / 1000);
    const r = this.rate;
    if (second !== r.second) {
      r.previous = second === r.second + 1 ? r.current : 0;
      r.current = 0;
      r.second = second;
    }
    r.current += n;
    return r.current + r.previous * (1 - (t / 1000 - second));
  }

  /**
   * Write what `unsaved` holds: one UPDATE … FROM over a JSON array (SQLite unpacks it; about two
   * thirds of an upsert's cost, and one statement whatever the count), and an INSERT for drones
   * without a row. Also called before anything else writes a drone's row (a relay reassignment),
   * so that an older sample cannot overwrite it later.
   */
  saveLiveState(): void {
    this.writeSet = false;
    if (!this.unsaved.size) return;
    this.lastWriteAt = performance.now();
    const rows = [...this.unsaved.values()];
    const anyNew = this.unsavedNew.size > 0;
    this.unsaved.clear();
    this.unsavedNew.clear();
    const json = JSON.stringify(rows);
    const updated = this.sql.exec(
      `UPDATE drones SET seq = j.value ->> '$.s.seq', received_at = j.value ->> '$.at', sample = j.value -> '$.s', relay_id = j.value ->> '$.r'
       FROM json_each(?) AS j WHERE drones.drone_id = j.value ->> '$.s.drone_id'`,
      json,
    ).rowsWritten;
    if (!anyNew && updated >= rows.length) return;
    this.sql.exec(
      `INSERT INTO drones (drone_id, seq, received_at, sample, relay_id)
       SELECT value ->> '$.s.drone_id', value ->> '$.s.seq', value ->> '$.at', value -> '$.s', value ->> '$.r' FROM json_each(?) WHERE true
       ON CONFLICT (drone_id) DO NOTHING`,
      json,
    );
  }
}
