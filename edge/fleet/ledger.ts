/**
 * The command ledger, in the fleet object's SQLite: every command with who sent it, what it asked,
 * each state it went through and its final answer. It is the idempotency record (a command_id is
 * stored once and answered from here forever after) and the audit trail. Table `commands` (schema.ts).
 *
 * An id is reserved only by a command that may run: a refusal that says nothing about the command
 * itself (its sender's role may not command, a rate limit, no relay) is recorded under an id of
 * the edge's own, with the client's in `params.client_command_id`, so the client's id stays free
 * for a retry (`release`).
 */
import type { AuditCursor, CommandResponse, CommandState, LedgerCommand } from "../protocol";
import { FINAL_STATES } from "../protocol";

export type LedgerRow = {
  command_id: string;
  command: LedgerCommand;
  drone_id: string | null;
  sub: string;
  role: string;
  status: CommandState;
  code: string | null;
  message: string | null;
  params: string;
  response: string | null;
  relay_id: string | null;
  received_at: number;
  sent_at: number | null;
  finished_at: number | null;
  deadline_at: number | null;
};

/** What the audit API returns per command. */
export type AuditEntry = Omit<LedgerRow, "params" | "response"> & {
  /** The command's parameters as received (an object; typed `object`, not unknown, so it can cross RPC). */
  params: object;
  latency_ms: number | null;
};

export class CommandLedger {
  constructor(
    private readonly sql: SqlStorage,
    /** Analytics hook: a command reached its final state (command_audit in Postgres). */
    private readonly onFinal: (row: LedgerRow) => void = () => {},
  ) {}

  get(commandId: string): LedgerRow | null {
    const rows = this.sql.exec<LedgerRow>(`SELECT * FROM commands WHERE command_id = ?`, commandId).toArray();
    return rows[0] ?? null;
  }

  create(row: Pick<LedgerRow, "command_id" | "command" | "drone_id" | "sub" | "role" | "params" | "received_at">): void {
    this.sql.exec(
      `INSERT INTO commands (command_id, command, drone_id, sub, role, status, params, received_at) VALUES (?, ?, ?, ?, ?, 'received', ?, ?)`,
      row.command_id,
      row.command,
      row.drone_id,
      row.sub,
      row.role,
      row.params,
      row.received_at,
    );
  }

  /**
   * Move a command not yet sent to `attemptId`, keeping the client's id in its params, so that the
   * client's id is free again. Returns false when the row was already sent or final.
   */
  release(commandId: string, attemptId: string): boolean {
    const row = this.get(commandId);
    if (!row || row.status !== "received") return false;
    // Written by create() from a parsed command's fields.
    const params = { ...(JSON.parse(row.params) as object), client_command_id: commandId };
    this.sql.exec(`UPDATE commands SET command_id = ?, params = ? WHERE command_id = ? AND status = 'received'`, attemptId, JSON.stringify(params), commandId);
    return true;
  }

  setDrone(commandId: string, droneId: string): void {
    this.sql.exec(`UPDATE commands SET drone_id = ? WHERE command_id = ?`, droneId, commandId);
  }

  markSent(commandId: string, relayId: string, now: number, deadline: number): void {
    this.sql.exec(
      `UPDATE commands SET status = 'sent', relay_id = ?, sent_at = ?, deadline_at = ? WHERE command_id = ? AND status = 'received'`,
      relayId,
      now,
      deadline,
      commandId,
    );
  }

  /** Move to a final state once; a second final (a late relay result after a timeout) is refused. */
  finish(commandId: string, status: CommandState, code: string | null, message: string, response: CommandResponse, now: number): boolean {
    if (!FINAL_STATES.includes(status)) throw new Error(`${status} is not a final state`);
    const cur = this.sql
      .exec<LedgerRow>(
        `UPDATE commands SET status = ?, code = ?, message = ?, response = ?, finished_at = ?
         WHERE command_id = ? AND status IN ('received', 'sent') RETURNING *`,
        status,
        code,
        message,
        JSON.stringify(response),
        now,
        commandId,
      )
      .toArray();
    if (cur.length !== 1) return false;
    this.onFinal(cur[0]!);
    return true;
  }

  /** Commands in flight whose deadline has passed. */
  expired(now: number): LedgerRow[] {
    return this.sql.exec<LedgerRow>(`SELECT * FROM commands WHERE status = 'sent' AND deadline_at <= ?`, now).toArray();
  }

  earliestDeadline(): number | null {
    const r = this.sql.exec<{ d: number | null }>(`SELECT MIN(deadline_at) AS d FROM commands WHERE status = 'sent'`).one();
    return r.d ?? null;
  }

  /**
   * Newest first: by received_at, then command_id, both descending, so that (received_at,
   * command_id) is a unique cursor. `before` pages on: the entries after it in that order; a
   * cursor without command_id takes the entries received strictly earlier.
   */
  list(limit: number, before?: AuditCursor): AuditEntry[] {
    const at = before?.received_at ?? Number.MAX_SAFE_INTEGER;
    const rows = this.sql
      .exec<LedgerRow>(
        `SELECT * FROM commands WHERE received_at < ? OR (received_at = ? AND command_id < ?)
         ORDER BY received_at DESC, command_id DESC LIMIT ?`,
        at,
        at,
        // "" sorts before every id: no entry of the cursor's own instant.
        before?.command_id ?? "",
        limit,
      )
      .toArray();
    return rows.map(({ params, response: _response, ...r }) => ({
      ...r,
      params: JSON.parse(params) as object, // written by create() from a parsed command's fields
      latency_ms: r.finished_at !== null ? r.finished_at - r.received_at : null,
    }));
  }
}
