/**
 * Commands from the edge (E→R `command`, answered by R→E `command_result`):
 * - Each runs through `execute` (the source's) with the relay's own deadline: `timeout_ms` from the
 *   frame clamped to [500, 30000] ms. A source that throws → `failed` with its message; one that
 *   never answers → `timeout` "timeout at the relay after N ms" (and its signal is aborted).
 * - Commands run concurrently, so an emergency land never waits behind a slow command. At most
 *   `maxInflight` run at once; beyond that a command fails at once ("relay busy"), except
 *   emergency_land, which always runs.
 * - A result stays unacknowledged until the edge's `command_result_ack`, and every one of them is
 *   re-sent after each reconnect (after hello_ack), so a result is not lost because the uplink
 *   dropped while the drone was acting. Bounded by `maxPendingResults` (oldest dropped, counted).
 * - The same command_id again (an edge retry) never executes twice: while it runs, the one result
 *   to come answers both; once answered, the cached result is sent again.
 * - A frame the protocol's parser refuses is answered `failed` when its command_id is readable.
 */
import type { CommandResult, RelayCommand, RelayCommandName } from "../../edge/protocol";
import { errorMessage, type Logger } from "../log";
import type { CommandOutcome } from "../sources/source";
import { realClock, type Clock, type Timer } from "./clock";
import type { Uplink } from "./connection";
import type { OutboxStore } from "./disk-outbox";

/** The relay's own deadline for a command: `timeout_ms` from the frame, clamped to this range. */
export const COMMAND_TIMEOUT_RANGE = { minMs: 500, maxMs: 30_000 } as const;
const MAX_MESSAGE = 1000;

export function clampTimeout(ms: number): number {
  const { minMs, maxMs } = COMMAND_TIMEOUT_RANGE;
  return Math.round(Math.min(maxMs, Math.max(minMs, ms)));
}

export type Execute = (command: RelayCommand, signal: AbortSignal) => Promise<CommandOutcome>;
export type CommandEnded = { command: RelayCommandName; status: CommandResult["status"]; seconds: number };

export interface CommandRunnerOptions {
  uplink: Uplink;
  clock: Clock;
  log: Logger;
  /** Without it every command is answered `failed` "this relay does not execute commands". */
  execute?: Execute;
  maxInflight: number;
  maxPendingResults: number;
  maxRecentResults: number;
  store?: OutboxStore;
  /** A command executed here ended (not called for duplicates or malformed frames). */
  onEnded: (info: CommandEnded) => void;
  /** A command finished and its mission's progress, if any, may go now. */
  onReleased: () => void;
}

type Running = { controller: AbortController; command: RelayCommandName; missionId?: string };

export class CommandRunner {
  /** Commands executing, by command_id. */
  private readonly running = new Map<string, Running>();
  /** Results sent (or waiting to be) that the edge has not acknowledged; insertion order. */
  private readonly unacked = new Map<string, CommandResult>();
  /** Acknowledged results, newest last, to answer a repeated command_id without executing. */
  private readonly recent = new Map<string, CommandResult>();
  /** Missions whose assign_mission is still executing: their progress waits for the result. */
  private readonly heldMissions = new Map<string, number>();
  private stopped = false;
  received = 0;
  duplicates = 0;
  droppedResults = 0;

  constructor(private readonly o: CommandRunnerOptions) {
    // Results a previous run never had acknowledged go out after the first hello_ack.
    for (const r of o.store?.pendingResults() ?? []) this.unacked.set(r.command_id, r);
  }

  get inFlight(): number {
    return this.running.size;
  }
  get pendingResults(): number {
    return this.unacked.size;
  }

  /** True while this mission's assign_mission executes. */
  holds(missionId: string): boolean {
    return this.heldMissions.has(missionId);
  }

  /** A `command` frame that parsed. */
  receive(cmd: RelayCommand): void {
    this.received++;
    if (this.answerDuplicate(cmd.command_id)) return;
    this.start({ ...cmd, timeout_ms: clampTimeout(cmd.timeout_ms) });
  }

  /** A `command` frame the parser refused, with the command_id it carried. */
  refuse(commandId: string, reason: string): void {
    this.received++;
    if (this.answerDuplicate(commandId)) return;
    const message = `invalid ${reason}`.slice(0, MAX_MESSAGE);
    this.o.log.warn("rejecting a malformed command", { command_id: commandId, message });
    this.finish(commandId, { ok: false, message });
  }

  /** `command_result_ack`: the edge has the result. */
  ack(commandId: string): void {
    const result = this.unacked.get(commandId);
    if (!result) return;
    this.unacked.delete(commandId);
    this.o.store?.ackResult(commandId);
    if (this.o.maxRecentResults === 0) return;
    this.recent.delete(commandId);
    this.recent.set(commandId, result);
    if (this.recent.size > this.o.maxRecentResults) {
      const oldest = this.recent.keys().next();
      if (!oldest.done) this.recent.delete(oldest.value);
    }
  }

  /** After hello_ack: every unacknowledged result again, oldest first. */
  resend(): void {
    for (const r of this.unacked.values()) this.o.uplink.send(r);
    if (this.unacked.size > 0) this.o.log.info("re-sent unacknowledged command results", { count: this.unacked.size });
  }

  /** The link stops: abandon what runs (its result could not reach the edge any more). */
  stop(): void {
    this.stopped = true;
    for (const r of this.running.values()) r.controller.abort(new Error("relay stopping"));
    if (this.running.size > 0) this.o.log.warn("stopped with commands still executing", { count: this.running.size });
    this.running.clear();
    if (this.unacked.size > 0) this.o.log.warn("stopped with unacknowledged command results", { count: this.unacked.size });
  }

  /** A command_id seen before: never execute again. Returns false when it is new. */
  private answerDuplicate(id: string): boolean {
    if (this.running.has(id)) {
      // The one result to come answers the retry too.
      this.duplicates++;
      this.o.log.debug("command already executing; not running it twice", { command_id: id });
      return true;
    }
    const result = this.unacked.get(id) ?? this.recent.get(id);
    if (!result) return false;
    // An acknowledged result is owed again until this repeat is acknowledged too.
    if (!this.unacked.has(id)) this.o.store?.recordResult(result);
    this.duplicates++;
    this.o.log.debug("repeated command; answering with the first result", { command_id: id, status: result.status });
    this.recent.delete(id);
    this.unacked.delete(id);
    this.unacked.set(id, result);
    this.send(result);
    return true;
  }

  private start(cmd: RelayCommand): void {
    const id = cmd.command_id;
    if (cmd.command !== "emergency_land" && this.running.size >= this.o.maxInflight) {
      this.finish(id, { ok: false, message: `relay busy: ${this.running.size} commands in flight` });
      return;
    }
    const controller = new AbortController();
    const missionId = cmd.command === "assign_mission" ? cmd.mission_id : undefined;
    if (missionId !== undefined) this.heldMissions.set(missionId, (this.heldMissions.get(missionId) ?? 0) + 1);
    this.running.set(id, { controller, command: cmd.command, missionId });
    const t0 = this.o.clock.now();
    const execute: Execute = this.o.execute ?? (async () => ({ ok: false, message: "this relay does not execute commands" }));
    this.o.log.debug("executing command", { command_id: id, command: cmd.command, drone_id: cmd.drone_id, timeout_ms: cmd.timeout_ms });
    void runWithTimeout(execute, cmd, cmd.timeout_ms, controller, this.o.clock).then(
      (outcome) => {
        if (this.running.get(id)?.controller !== controller) return; // stopped meanwhile
        this.running.delete(id);
        this.release(missionId);
        const ms = this.o.clock.now() - t0;
        const fields = { command_id: id, command: cmd.command, drone_id: cmd.drone_id, ok: outcome.ok, message: outcome.message, ms };
        if (outcome.ok) this.o.log.info("command acked", fields);
        else this.o.log.warn("command failed", fields);
        this.o.onEnded({ command: cmd.command, status: resultStatus(outcome), seconds: ms / 1000 });
        this.finish(id, outcome);
        this.o.onReleased();
      },
      (err: unknown) => {
        // runWithTimeout never rejects; this only guards against a bug turning into a lost result.
        this.running.delete(id);
        this.release(missionId);
        this.finish(id, { ok: false, message: errorMessage(err) });
      },
    );
  }

  private release(missionId: string | undefined): void {
    if (missionId === undefined) return;
    const n = (this.heldMissions.get(missionId) ?? 1) - 1;
    if (n > 0) this.heldMissions.set(missionId, n);
    else this.heldMissions.delete(missionId);
  }

  /** Record the result until acknowledged and send it if we can. */
  private finish(id: string, outcome: CommandOutcome): void {
    if (this.stopped) return;
    const frame: CommandResult = {
      type: "command_result",
      command_id: id,
      status: resultStatus(outcome),
      ...(outcome.message ? { message: outcome.message.slice(0, MAX_MESSAGE) } : {}),
    };
    this.unacked.delete(id);
    if (this.unacked.size >= this.o.maxPendingResults) {
      const oldest = this.unacked.keys().next();
      if (!oldest.done) {
        this.unacked.delete(oldest.value);
        this.o.store?.ackResult(oldest.value);
        this.droppedResults++;
        this.o.log.warn("too many unacknowledged command results; forgetting the oldest", { command_id: oldest.value, max: this.o.maxPendingResults });
      }
    }
    this.unacked.set(id, frame);
    this.o.store?.recordResult(frame);
    this.send(frame);
  }

  private send(frame: CommandResult): void {
    // Results ignore telemetry backpressure: they are small and an operator is waiting.
    if (this.o.uplink.ready) this.o.uplink.send(frame);
  }
}

/**
 * Run `execute` with a deadline. Always resolves, exactly once: the source's outcome; `failed`
 * with the error's message when it throws or rejects; `timeout` "timeout at the relay after N ms"
 * when it has not answered by then (the signal is aborted so the source can stop waiting).
 */
export async function runWithTimeout(
  execute: Execute,
  command: RelayCommand,
  timeoutMs: number,
  controller: AbortController = new AbortController(),
  clock: Clock = realClock,
): Promise<CommandOutcome> {
  let timer: Timer | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<CommandOutcome>((resolve) => {
    timer = clock.setTimeout(() => {
      const message = `timeout at the relay after ${timeoutMs} ms`;
      resolve({ ok: false, timedOut: true, message });
      controller.abort(new Error(message));
    }, timeoutMs);
    // Aborted from outside (the relay stopping): end now rather than at the deadline.
    onAbort = () => resolve({ ok: false, message: `aborted: ${errorMessage(controller.signal.reason)}` });
    if (controller.signal.aborted) onAbort();
    else controller.signal.addEventListener("abort", onAbort, { once: true });
  });
  const run = (async (): Promise<CommandOutcome> => {
    try {
      return normalizeOutcome(await execute(command, controller.signal));
    } catch (err) {
      return { ok: false, message: errorMessage(err).slice(0, MAX_MESSAGE) || "source failed" };
    }
  })();
  try {
    return await Promise.race([run, timeout]);
  } finally {
    clock.clearTimeout(timer);
    if (onAbort) controller.signal.removeEventListener("abort", onAbort);
  }
}

/** Whatever a source returned, as a well-formed outcome with a message of ≤1000 characters. */
export function normalizeOutcome(v: unknown): CommandOutcome {
  if (typeof v !== "object" || v === null || !("ok" in v) || typeof v.ok !== "boolean") return { ok: false, message: "source returned no outcome" };
  const raw = "message" in v ? v.message : undefined;
  const message = typeof raw === "string" && raw.length > 0 ? raw.slice(0, MAX_MESSAGE) : undefined;
  if (v.ok) return message === undefined ? { ok: true } : { ok: true, message };
  const timedOut = "timedOut" in v && v.timedOut === true;
  return { ok: false, message: message ?? "failed at the drone", ...(timedOut ? { timedOut: true as const } : {}) };
}

/** The wire status of a finished command: a service that did not answer is `timeout`, not `failed`. */
function resultStatus(outcome: CommandOutcome): CommandResult["status"] {
  return outcome.ok ? "acked" : outcome.timedOut ? "timeout" : "failed";
}
