/**
 * The command ledger, in the fleet object's SQLite: every command with who sent it, what it asked,
 * each state it went through and its final answer. It is the idempotency record (a command_id is
 * stored once and answered from here forever after) and the audit trail. Table `commands` (schema.ts).
 */
import type { CommandResponse, CommandState, LedgerCommand } from "../protocol";
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

  /** Newest first, `before` a received_at for paging. */
  list(limit: number, before?: number): AuditEntry[] {
    const rows = this.sql
      .exec<LedgerRow>(
        `SELECT * FROM commands WHERE received_at < ? ORDER BY received_at DESC, command_id LIMIT ?`,
        before ?? Number.MAX_SAFE_INTEGER,
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
