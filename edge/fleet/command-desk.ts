/**
 * The command desk: takes an operator command from a dashboard socket through authorization, rate
 * limiting, safety validation and drone selection, records every step in the ledger, sends it to
 * the relay that serves the drone and answers once it reaches a final state. It owns no socket and
 * no storage handle of its own: the fleet object passes both in (HubPorts), so it stays testable.
 *
 * The rules a seed-style client relies on (issue 15) and that keep landing possible (issue 18):
 * - a command without command_id gets one of the edge's (`edge-…`), runs once, and its answer says
 *   `idempotent: false`;
 * - every refusal is the command's own response type, also for frames that could not be parsed or
 *   were over the socket's message limit (`refuseFrame`);
 * - refusals that say nothing about the command (forbidden, rate_limited, relay_offline) leave the
 *   sender's command_id free for a retry;
 * - an operator's emergency_land passes every limiter (`bypassesLimits`, and the command bucket).
 */
import { rankCandidates } from "../domain/assign";
import type { FleetConfig } from "../domain/fleet-config";
import type { CommandLedger, LedgerRow } from "./ledger";
import type { DroneRecord } from "../domain/live-state";
import type { MissionStore } from "./missions";
import {
  LIMITS,
  readCommandHead,
  stringField,
  type AlternativeSuggestion,
  type CommandMessage,
  type CommandResponse,
  type CommandResult,
  type CommandState,
  type CommandStatusFrame,
  type LedgerCommand,
  type MissionUpdate,
  type ParsedCommand,
  type RelayCommand,
  type ServerMessage,
  type Waypoint,
} from "../protocol";
import { checkPosition, trafficOf, validateWaypoint } from "../domain/safety";

/** How long a command may stay at the relay before it ends in `timeout`. */
export const COMMAND_TIMEOUT_MS = 5_000;
/** Roles allowed to command. Viewers never; coordination overrides take operator or admin too. */
const COMMAND_ROLES = new Set(["operator", "admin"]);
/**
 * Refusals that say nothing about the command itself: they never reserve the client's
 * command_id, so the same id may be sent again and then runs (the attempt is recorded under an id
 * of the edge's own, see ledger.ts).
 */
const NON_RESERVING = new Set(["forbidden", "rate_limited", "relay_offline"]);

/** Whether a role may send operator commands. */
export function mayCommand(role: string): boolean {
  return COMMAND_ROLES.has(role);
}

/** An id the edge makes: for a command that came without one, and for attempts that must not
 * hold the client's id. The same form as a client's (COMMAND_ID_RE). */
export function edgeCommandId(): string {
  return `edge-${crypto.randomUUID()}`;
}

/**
 * Whether a dashboard frame must pass every limiter: an emergency_land from a role that may
 * command (issue 18: landing always runs). Parses the frame, so the caller asks only for frames a
 * limiter would refuse; a viewer's frames stay limited (theirs are refused anyway).
 */
export function bypassesLimits(role: string, raw: string | ArrayBuffer): boolean {
  if (!mayCommand(role) || typeof raw !== "string" || raw.length > LIMITS.dashboardFrameBytes) return false;
  try {
    return stringField(JSON.parse(raw), "type") === "emergency_land";
  } catch {
    return false;
  }
}

export interface HubPorts {
  now(): number;
  config(): FleetConfig;
  drone(id: string): DroneRecord | undefined;
  drones(): Iterable<DroneRecord>;
  /** The connected relay serving a drone, or null when none is. */
  relayFor(droneId: string): { relayId: string; send(frame: RelayCommand): boolean } | null;
  reply(ws: WebSocket, frame: ServerMessage): void;
  broadcast(frame: ServerMessage): void;
  /** A deadline was added: make sure the alarm fires by then. */
  deadlineAdded(at: number): void;
  /** Hook for coordination overrides (the coordination module gives them effect). */
  override?(eventId: string, action: string, by: string, reason: string | undefined): { ok: true; message: string } | { ok: false; code: string; message: string };
}

export type Caller = { ws: WebSocket; sub: string; role: string };

/** Token bucket per socket: `max` commands per 10 s. */
type Bucket = { tokens: number; at: number };

/**
 * One command being handled: the command with the id its sender knows it by, and the id of its
 * ledger row. They differ for an attempt recorded without reserving the sender's id.
 */
type Run = { msg: CommandMessage; row: string; idempotent: boolean };
/** A socket waiting for a command's final answer, and how the answer is addressed to it: the
 * command_id and request_id it sent (or was given), and whether the id was its own. */
type Waiter = { ws: WebSocket; commandId: string; requestId?: string; idempotent: boolean };

export class CommandDesk {
  /** Sockets waiting for a command's final answer (the sender, and anyone who repeated its id), by ledger row id. */
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly buckets = new WeakMap<WebSocket, Bucket>();

  constructor(
    private readonly ports: HubPorts,
    private readonly ledger: CommandLedger,
    private readonly missions: MissionStore,
  ) {}

  handle(caller: Caller, parsed: ParsedCommand): void {
    const now = this.ports.now();
    // A command without an id (a seed-style client) gets one here and runs once; its answer says
    // idempotent: false, since a retry without an id is a new command.
    const idempotent = parsed.command_id !== undefined;
    const msg: CommandMessage = { ...parsed, command_id: parsed.command_id ?? edgeCommandId() };
    // A refusal that must not hold the id it answers with is recorded under an id of its own.
    const attempt = (): Run => {
      const run = { msg, row: edgeCommandId(), idempotent };
      this.record(caller, run, now);
      return run;
    };

    // Before the ledger: a role that may not command never reserves (nor reads) a command_id.
    if (!mayCommand(caller.role)) return this.reject(attempt(), "forbidden", `role ${caller.role} may not send ${msg.type}`);
    const prior = idempotent ? this.ledger.get(msg.command_id) : null;
    if (prior) return this.repeat(caller, msg, prior);
    if (msg.type !== "emergency_land" && !this.take(caller.ws, now)) {
      return this.reject(attempt(), "rate_limited", `more than ${this.ports.config().max_commands_per_10s} commands in 10 s on this connection; emergency_land is never limited`);
    }
    const run: Run = { msg, row: msg.command_id, idempotent };
    this.record(caller, run, now);
    switch (msg.type) {
      case "modify_waypoint":
        return this.modifyWaypoint(run, msg, now);
      case "assign_mission":
        return this.assignMission(run, msg, now);
      case "emergency_land":
        return this.emergencyLand(run, msg, now);
      case "coordination_override":
        return this.coordinationOverride(run, caller, msg);
      default: {
        const never: never = msg;
        throw new Error(`unhandled command ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Answer a command frame the edge could not take whole — not JSON, a malformed field, or over
   * the socket's message limit — in the command's own response type, with its command_id and
   * request_id echoed when they are readable (else an id of the edge's own, `idempotent: false`).
   * Nothing is recorded: the command did not run and its id stays free. Returns false when no
   * command type can be read from the frame; the caller answers it with a generic `error`.
   */
  refuseFrame(ws: WebSocket, raw: string | ArrayBuffer, why: { code: string; message: string }): boolean {
    const head = typeof raw === "string" ? readCommandHead(raw) : null;
    if (!head) return false;
    const base = {
      command_id: head.command_id ?? edgeCommandId(),
      ...(head.request_id !== undefined ? { request_id: head.request_id } : {}),
      success: false,
      status: "rejected" as const,
      code: why.code,
      message: why.message,
      alternative_suggestions: [],
      ...(head.command_id === undefined ? { idempotent: false } : {}),
    };
    this.ports.reply(ws, answer(head.type, base, { drone_id: head.drone_id ?? null, event_id: head.event_id ?? "", action: head.action ?? "" }, {}, true));
    return true;
  }

  /** Create the ledger row of a run and put its sender in the queue for the final answer. */
  private record(caller: Caller, run: Run, now: number): void {
    const { msg } = run;
    const params = { ...paramsOf(msg), ...(run.row !== msg.command_id ? { client_command_id: msg.command_id } : {}) };
    this.ledger.create({
      command_id: run.row,
      command: msg.type,
      drone_id: "drone_id" in msg ? (msg.drone_id ?? null) : null,
      sub: caller.sub,
      role: caller.role,
      params: JSON.stringify(params),
      received_at: now,
    });
    this.addWaiter(run.row, { ws: caller.ws, commandId: msg.command_id, ...(msg.request_id !== undefined ? { requestId: msg.request_id } : {}), idempotent: run.idempotent });
  }

  // ------------------------------------------------------------------ per command

  private modifyWaypoint(run: Run, msg: Extract<CommandMessage, { type: "modify_waypoint" }>, now: number): void {
    const rec = this.ports.drone(msg.drone_id);
    if (!rec) return this.reject(run, "unknown_drone", `drone ${msg.drone_id} is not in this fleet`);
    const config = this.ports.config();
    const result = validateWaypoint({
      drone: rec.sample,
      target: msg.new_waypoint,
      config,
      others: trafficOf(this.ports.drones(), msg.drone_id, (id) => this.missions.plan(id)),
    });
    if (!result.ok) {
      return this.reject(run, "safety_violation", result.message, { rule: result.rule, alternative_suggestions: result.alternative_suggestions });
    }
    this.dispatch(run, msg.drone_id, now, {
      command: "modify_waypoint",
      new_waypoint: msg.new_waypoint,
      modification_reason: msg.modification_reason,
    });
  }

  private assignMission(run: Run, msg: Extract<CommandMessage, { type: "assign_mission" }>, now: number): void {
    const config = this.ports.config();
    for (const [i, wp] of msg.mission.waypoints.entries()) {
      const check = checkPosition(wp, config);
      if (!check.ok) {
        return this.reject(run, "safety_violation", `waypoint ${i}: ${check.message}`, {
          rule: check.rule,
          alternative_suggestions: check.alternative_suggestions,
        });
      }
    }
    if (msg.drone_id && !this.ports.drone(msg.drone_id)) {
      return this.reject(run, "unknown_drone", `drone ${msg.drone_id} is not in this fleet`);
    }
    const busy = this.missions.busy();
    const drones = [...this.ports.drones()]
      .filter((d) => !msg.drone_id || d.sample.drone_id === msg.drone_id)
      .map((d) => ({
        drone_id: d.sample.drone_id,
        lat: d.sample.lat,
        lon: d.sample.lon,
        alt_m: d.sample.alt_m,
        battery_pct: d.sample.battery_pct,
        status: d.sample.status,
        armed: d.sample.armed,
        link: d.link,
        busy: busy.has(d.sample.drone_id),
        busy_priority: busy.get(d.sample.drone_id),
      }));
    const candidates = rankCandidates({
      drones,
      mission: msg.mission,
      config,
      now,
      assignedCounts: this.missions.assignedSince(now - 24 * 3600_000),
    });
    const top = candidates.slice(0, 10);
    const best = candidates.find((c) => c.eligible && this.ports.relayFor(c.drone_id));
    if (!best) {
      const anyEligible = candidates.some((c) => c.eligible);
      return anyEligible
        ? this.reject(run, "relay_offline", "no relay is connected for the eligible drones", { candidates: top })
        : this.reject(run, "no_candidate", msg.drone_id ? `drone ${msg.drone_id} cannot fly this mission: ${candidates[0]?.reasons.join("; ") ?? "unknown"}` : "no drone can fly this mission now", { candidates: top });
    }
    // The relay takes mission ids of up to 64 characters.
    const missionId = msg.command_id.length <= 62 ? `m-${msg.command_id}` : `m-${crypto.randomUUID()}`;
    this.ledger.setDrone(run.row, best.drone_id);
    this.dispatch(
      run,
      best.drone_id,
      now,
      { command: "assign_mission", mission_id: missionId, waypoints: msg.mission.waypoints, priority: msg.mission.priority },
      { candidates: top, mission_id: missionId },
      // Only a mission that reached a relay exists: a refused one leaves its id free for a retry.
      () => this.missions.create({ mission_id: missionId, drone_id: best.drone_id, command_id: msg.command_id, priority: msg.mission.priority, waypoints: msg.mission.waypoints }, now),
    );
  }

  private emergencyLand(run: Run, msg: Extract<CommandMessage, { type: "emergency_land" }>, now: number): void {
    if (!this.ports.drone(msg.drone_id)) return this.reject(run, "unknown_drone", `drone ${msg.drone_id} is not in this fleet`);
    this.dispatch(run, msg.drone_id, now, { command: "emergency_land", reason: msg.reason });
  }

  private coordinationOverride(run: Run, caller: Caller, msg: Extract<CommandMessage, { type: "coordination_override" }>): void {
    const r = this.ports.override?.(msg.event_id, msg.action, caller.sub, msg.reason) ?? {
      ok: false as const,
      code: "unknown_event",
      message: `no coordination event ${msg.event_id}`,
    };
    if (!r.ok) return this.reject(run, r.code, r.message);
    this.finish(run.row, "acked", null, r.message);
  }

  /**
   * A command the edge issues itself (collision avoidance), ledgered under `by` with role
   * `system`. The resolution was already checked against the position rules and re-predicted,
   * so the operator-facing safety validation and rate limit do not apply. Returns true if sent.
   */
  system(cmd: { drone_id: string; command: "modify_waypoint"; new_waypoint: Waypoint; reason: string } | { drone_id: string; command: "hold"; duration_s: number; reason: string }, by: string): boolean {
    const now = this.ports.now();
    const commandId = `sys-${now.toString(36)}-${crypto.randomUUID().slice(0, 12)}`;
    const params = cmd.command === "hold" ? { drone_id: cmd.drone_id, duration_s: cmd.duration_s, reason: cmd.reason } : { drone_id: cmd.drone_id, new_waypoint: cmd.new_waypoint, modification_reason: cmd.reason };
    this.ledger.create({ command_id: commandId, command: cmd.command, drone_id: cmd.drone_id, sub: by, role: "system", params: JSON.stringify(params), received_at: now });
    const relay = this.ports.relayFor(cmd.drone_id);
    const body = cmd.command === "hold" ? { command: "hold" as const, duration_s: cmd.duration_s } : { command: "modify_waypoint" as const, new_waypoint: cmd.new_waypoint, modification_reason: cmd.reason };
    const frame = { type: "command", command_id: commandId, drone_id: cmd.drone_id, timeout_ms: COMMAND_TIMEOUT_MS - 500, ...body } as RelayCommand;
    if (!relay || !relay.send(frame)) {
      this.finish(commandId, "rejected", "relay_offline", `no relay is connected for ${cmd.drone_id}`);
      return false;
    }
    const deadline = now + COMMAND_TIMEOUT_MS;
    this.ledger.markSent(commandId, relay.relayId, now, deadline);
    this.ports.deadlineAdded(deadline);
    this.status(commandId, cmd.command, cmd.drone_id, "sent");
    return true;
  }

  // ------------------------------------------------------------------ ledger transitions

  /** Send to the relay serving the drone, or fail fast with relay_offline. `sent` runs once the relay has the frame. */
  private dispatch(run: Run, droneId: string, now: number, body: DistributiveOmit<RelayCommand, "type" | "command_id" | "drone_id" | "timeout_ms">, extra: Partial<ResponseExtras> = {}, sent?: () => void): void {
    const relay = this.ports.relayFor(droneId);
    if (!relay) return this.reject(run, "relay_offline", `no relay is connected for ${droneId}; nothing was sent`, extra);
    const frame = { type: "command", command_id: run.row, drone_id: droneId, timeout_ms: COMMAND_TIMEOUT_MS - 500, ...body } as RelayCommand;
    if (!relay.send(frame)) return this.reject(run, "relay_offline", `the relay for ${droneId} could not be reached`, extra);
    sent?.();
    const deadline = now + COMMAND_TIMEOUT_MS;
    this.ledger.markSent(run.row, relay.relayId, now, deadline);
    this.pendingExtras.set(run.row, extra);
    this.ports.deadlineAdded(deadline);
    this.status(run.row, run.msg.type, droneId, "sent");
  }

  /** Extras (candidates, mission id) to repeat in the final answer; rebuilt from storage if lost. */
  private readonly pendingExtras = new Map<string, Partial<ResponseExtras>>();

  /** A relay's `command_result`. Returns false when the command was already final (late result). */
  onResult(commandId: string, status: CommandResult["status"], message: string | undefined): boolean {
    const row = this.ledger.get(commandId);
    if (!row || row.status !== "sent") return false;
    const fallback = status === "acked" ? "acknowledged by the drone" : status === "timeout" ? "the drone did not answer in time" : "failed at the drone";
    const ok = this.finish(commandId, status, status === "acked" ? null : status, message ?? fallback);
    if (ok && status === "acked") this.afterAck(row);
    if (ok && status !== "acked" && row.command === "assign_mission") {
      const m = this.missions.byCommand(commandId);
      if (m) this.missions.transition(m.mission_id, "failed", this.ports.now(), { message: message ?? "relay failed" });
    }
    return ok;
  }

  /** End every command whose deadline has passed in `timeout`. */
  expire(now: number): number {
    const rows = this.ledger.expired(now);
    for (const row of rows) {
      if (this.finish(row.command_id, "timeout", "timeout", `no answer from the relay within ${COMMAND_TIMEOUT_MS} ms`) && row.command === "assign_mission") {
        const m = this.missions.byCommand(row.command_id);
        if (m) this.missions.transition(m.mission_id, "failed", now, { message: "command timed out" });
      }
    }
    return rows.length;
  }

  private afterAck(row: LedgerRow): void {
    const now = this.ports.now();
    const ts = new Date(now).toISOString();
    const params = JSON.parse(row.params) as Record<string, unknown>;
    const droneId = row.drone_id!;
    let update: MissionUpdate["update"] | null = null;
    if (row.command === "modify_waypoint") {
      const wp = params.new_waypoint as Waypoint;
      this.missions.setPlan(droneId, [wp], now);
      update = { type: "waypoint_modified", drone_id: droneId, new_waypoint: wp, modification_reason: String(params.modification_reason ?? ""), timestamp: ts };
    } else if (row.command === "assign_mission") {
      const m = this.missions.byCommand(row.command_id);
      if (m) {
        this.missions.transition(m.mission_id, "assigned", now);
        update = { type: "mission_assigned", drone_id: droneId, mission_id: m.mission_id, waypoints: JSON.parse(m.waypoints) as Waypoint[], priority: m.priority, timestamp: ts };
      }
    } else if (row.command === "emergency_land") {
      for (const m of this.missions.activeFor(droneId)) this.missions.transition(m.mission_id, "aborted", now, { message: "emergency land" });
      this.missions.clearPlan(droneId);
      update = { type: "emergency_land", drone_id: droneId, reason: String(params.reason ?? "operator"), timestamp: ts };
    }
    if (update) this.ports.broadcast({ type: "mission_update", drone_id: droneId, update });
  }

  private reject(run: Run, code: string, message: string, extra: Partial<ResponseExtras> = {}): void {
    if (NON_RESERVING.has(code) && run.row === run.msg.command_id) {
      // Found out only now (no relay): move the attempt off the sender's id so a retry runs.
      const attempt = edgeCommandId();
      if (this.ledger.release(run.row, attempt)) {
        const waiting = this.waiters.get(run.row);
        this.waiters.delete(run.row);
        if (waiting) this.waiters.set(attempt, waiting);
        run.row = attempt;
      }
    }
    this.pendingExtras.set(run.row, extra);
    this.finish(run.row, "rejected", code, message);
  }

  /** Record the final state, answer every waiter, tell every dashboard. */
  private finish(rowId: string, status: CommandState, code: string | null, message: string): boolean {
    const row = this.ledger.get(rowId);
    if (!row) return false;
    const extra = this.pendingExtras.get(rowId) ?? this.extrasFromStorage(row);
    this.pendingExtras.delete(rowId);
    const response = buildResponse(row, status, code, message, extra);
    if (!this.ledger.finish(rowId, status, code, message, response, this.ports.now())) return false;
    for (const w of this.waiters.get(rowId) ?? []) {
      this.ports.reply(w.ws, { ...response, command_id: w.commandId, request_id: w.requestId, ...(w.idempotent ? {} : { idempotent: false }) });
    }
    this.waiters.delete(rowId);
    // Everyone else sees the ledger's id: an attempt's refusal must not look like the end of a
    // command that holds the sender's id (a viewer may reuse an operator's id in flight).
    this.status(rowId, row.command, row.drone_id, status, code ?? undefined, message, row.sub);
    return true;
  }

  private extrasFromStorage(row: LedgerRow): Partial<ResponseExtras> {
    if (row.command !== "assign_mission") return {};
    const m = this.missions.byCommand(row.command_id);
    return m ? { mission_id: m.mission_id } : {};
  }

  private status(commandId: string, command: LedgerCommand, droneId: string | null, status: CommandState, code?: string, message?: string, by?: string): void {
    const sub = by ?? this.ledger.get(commandId)?.sub ?? "unknown";
    const frame: CommandStatusFrame = { type: "command_status", command_id: commandId, command, drone_id: droneId, status, by: sub, ts: this.ports.now() };
    if (code) frame.code = code;
    if (message) frame.message = message;
    this.ports.broadcast(frame);
  }

  /** The same command_id again: the first answer, or "still in flight" and a place in the queue. */
  private repeat(caller: Caller, msg: CommandMessage, prior: LedgerRow): void {
    if (prior.response) {
      // Written by finish() from a CommandResponse; answers stored before every answer carried
      // alternative_suggestions get an empty list.
      const first = JSON.parse(prior.response) as CommandResponse;
      this.ports.reply(caller.ws, { ...first, alternative_suggestions: first.alternative_suggestions ?? [], request_id: msg.request_id, duplicate: true });
      return;
    }
    this.addWaiter(msg.command_id, { ws: caller.ws, commandId: msg.command_id, ...(msg.request_id !== undefined ? { requestId: msg.request_id } : {}), idempotent: true });
    this.ports.reply(caller.ws, {
      type: "command_status",
      command_id: prior.command_id,
      command: prior.command,
      drone_id: prior.drone_id,
      status: prior.status,
      message: "duplicate command_id: already in flight, the final answer will follow",
      by: prior.sub,
      ts: this.ports.now(),
    });
  }

  private addWaiter(rowId: string, w: Waiter): void {
    const list = this.waiters.get(rowId) ?? [];
    if (!list.some((o) => o.ws === w.ws && o.requestId === w.requestId)) list.push(w);
    this.waiters.set(rowId, list);
  }

  private take(ws: WebSocket, now: number): boolean {
    const max = this.ports.config().max_commands_per_10s;
    const b = this.buckets.get(ws) ?? { tokens: max, at: now };
    b.tokens = Math.min(max, b.tokens + ((now - b.at) / 10_000) * max);
    b.at = now;
    this.buckets.set(ws, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Socket closed: it no longer waits for answers. */
  forget(ws: WebSocket): void {
    for (const [id, list] of this.waiters) {
      const rest = list.filter((w) => w.ws !== ws);
      if (rest.length) this.waiters.set(id, rest);
      else this.waiters.delete(id);
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type ResponseExtras = {
  rule: string;
  alternative_suggestions: AlternativeSuggestion[];
  candidates: Extract<CommandResponse, { type: "mission_assignment_response" }>["candidates"];
  mission_id: string;
};

function paramsOf(msg: CommandMessage): Record<string, unknown> {
  const { type: _t, command_id: _c, request_id: _r, ...rest } = msg;
  return rest;
}

/** Fields of an answer every command type shares. */
type AnswerBase = Omit<Extract<CommandResponse, { type: "emergency_land_response" }>, "type" | "drone_id">;

/** The answer of one command type from its common fields and the command's own. */
function answer(command: LedgerCommand, base: AnswerBase, f: { drone_id: string | null; event_id: string; action: string }, extra: Partial<ResponseExtras>, rejected: boolean): CommandResponse {
  const safety = extra.rule ? { rule: extra.rule } : {};
  switch (command) {
    case "modify_waypoint":
      return { ...base, type: "waypoint_modification_response", drone_id: f.drone_id ?? "", ...safety };
    case "assign_mission":
      return { ...base, type: "mission_assignment_response", drone_id: rejected ? null : f.drone_id, mission_id: extra.mission_id ?? null, candidates: extra.candidates ?? [], ...safety };
    case "emergency_land":
      return { ...base, type: "emergency_land_response", drone_id: f.drone_id ?? "" };
    case "coordination_override":
      return { ...base, type: "coordination_override_response", event_id: f.event_id, action: f.action };
    case "hold":
      return { ...base, type: "hold_response", drone_id: f.drone_id ?? "" };
  }
}

function buildResponse(row: LedgerRow, status: CommandState, code: string | null, message: string, extra: Partial<ResponseExtras>): CommandResponse {
  const params = JSON.parse(row.params) as Record<string, unknown>; // written by record() from a parsed command
  const base = { command_id: row.command_id, success: status === "acked", status, message, ...(code ? { code } : {}), alternative_suggestions: extra.alternative_suggestions ?? [] };
  return answer(row.command, base, { drone_id: row.drone_id, event_id: String(params.event_id ?? ""), action: String(params.action ?? "") }, extra, status === "rejected");
}
