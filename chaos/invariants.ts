/**
 * The invariants checked after a chaos run: pure functions from what was recorded (dashboards,
 * relay log, edge lists, Postgres rows) to table rows with pass/fail and the numbers behind them.
 */
import type { DashboardStats, Frame, SentCommand } from "./clients";

export type Check = { name: string; pass: boolean; numbers: string; problems: string[] };

export const FINAL_STATES = new Set(["acked", "rejected", "failed", "timeout"]);
/** Refusal codes that leave the command_id free for a retry (README, Commands). */
const TRANSIENT_REFUSALS = new Set(["forbidden", "rate_limited", "relay_offline", "token_expired"]);

export type LedgerEntry = { command_id: string; command: string; status: string; role: string; drone_id: string | null; code: string | null; params?: unknown };

/** The client's id of an attempt the edge refused for a passing reason (forbidden, rate_limited,
 * relay_offline, token_expired): audited under an edge id so the client's id stays free to retry. */
const clientIdOf = (r: LedgerEntry): string | null => {
  const p = r.params;
  return typeof p === "object" && p !== null && "client_command_id" in p && typeof p.client_command_id === "string" ? p.client_command_id : null;
};

const first = (xs: string[], n = 8) => (xs.length > n ? [...xs.slice(0, n), `… and ${xs.length - n} more`] : xs);
const count = <T>(xs: readonly T[], key: (x: T) => string) => {
  const m = new Map<string, number>();
  for (const x of xs) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return [...m].map(([k, v]) => `${k} ${v}`).join(", ");
};

/** 1. Every command ended in exactly one final state, and every answer agrees with it. */
export function checkFinalStates(ledger: LedgerEntry[], sent: SentCommand[], answers: Frame[], statuses: Frame[]): Check {
  const problems: string[] = [];
  const byId = new Map(ledger.map((r) => [r.command_id, r]));
  if (byId.size !== ledger.length) problems.push(`the audit lists ${ledger.length - byId.size} command_id(s) more than once`);
  for (const r of ledger) if (!FINAL_STATES.has(r.status)) problems.push(`${r.command_id} (${r.command}) still "${r.status}"`);
  const refusedAttempts = new Set(ledger.map(clientIdOf).filter((id): id is string => id !== null));
  let notReceived = 0;
  for (const c of sent) {
    if (!byId.has(c.command_id) && !refusedAttempts.has(c.command_id)) {
      notReceived++;
      problems.push(`${c.command_id} was sent ${c.sends}× but the edge has no record of it`);
    }
  }
  let checkedAnswers = 0;
  let duplicateAnswers = 0;
  for (const f of [...answers, ...statuses]) {
    const status = String(f.status);
    if (!FINAL_STATES.has(status)) continue;
    const id = String(f.command_id);
    const row = byId.get(id);
    if (!row) continue;
    // A refusal for a passing reason does not end the id: the same command may run when retried.
    if (status === "rejected" && TRANSIENT_REFUSALS.has(String(f.code))) continue;
    checkedAnswers++;
    if (f.duplicate === true) duplicateAnswers++;
    if (row.status !== status) problems.push(`${id}: a dashboard was told "${status}", the audit says "${row.status}"`);
  }
  const system = ledger.filter((r) => r.role === "system").length;
  return {
    name: "every command ended in exactly one final state",
    pass: problems.length === 0,
    numbers: `${ledger.length} commands (${ledger.length - system} operator, ${system} system): ${count(ledger, (r) => r.status)}; ${checkedAnswers} final answers agree (${duplicateAnswers} repeats answered duplicate:true); ${notReceived} never reached the edge`,
    problems: first(problems),
  };
}

/** 2. No command ran twice at the relay (executions counted from the simulator's log, every
 * relay process of the run). An acked drone command ran exactly once; a rejected one never. */
export function checkNoDoubleExecution(ledger: LedgerEntry[], executions: Map<string, number>, suppressed: number): Check {
  const problems: string[] = [];
  let total = 0;
  for (const [id, n] of executions) {
    total += n;
    if (n > 1) problems.push(`${id} executed ${n}×`);
  }
  const byId = new Map(ledger.map((r) => [r.command_id, r]));
  let lateOrLost = 0;
  for (const r of ledger) {
    if (r.command === "coordination_override") continue; // answered at the edge, never sent
    const n = executions.get(r.command_id) ?? 0;
    if (r.status === "acked" && n !== 1) problems.push(`${r.command_id} acked but executed ${n}×`);
    if (r.status === "rejected" && n !== 0) problems.push(`${r.command_id} rejected at the edge but executed ${n}×`);
    if (r.status === "timeout" && n === 1) lateOrLost++;
  }
  for (const id of executions.keys()) if (!byId.has(id)) problems.push(`${id} executed but unknown to the edge`);
  return {
    name: "no command ran twice at the relay",
    pass: problems.length === 0,
    numbers: `${total} executions of ${executions.size} commands; ${suppressed} repeated deliveries answered without executing; ${lateOrLost} executed but ended timeout (result lost or late)`,
    problems: first(problems),
  };
}

/** 3. Every command acknowledged to a dashboard is in the audit (the edge's and Postgres'). */
export function checkAckedInAudit(ledger: LedgerEntry[], answers: Frame[], statuses: Frame[], pgAudit: Map<string, string> | null): Check {
  const problems: string[] = [];
  const byId = new Map(ledger.map((r) => [r.command_id, r]));
  const acked = new Set<string>();
  for (const f of [...answers, ...statuses]) if (f.status === "acked") acked.add(String(f.command_id));
  for (const id of acked) {
    if (byId.get(id)?.status !== "acked") problems.push(`${id} acknowledged to a dashboard, audit says ${byId.get(id)?.status ?? "nothing"}`);
    if (pgAudit && pgAudit.get(id) !== "acked") problems.push(`${id} acknowledged to a dashboard, Postgres command_audit says ${pgAudit.get(id) ?? "nothing"}`);
  }
  return {
    name: "every acknowledged command is in the audit",
    pass: problems.length === 0,
    numbers: `${acked.size} commands acknowledged to dashboards; all in GET /commands${pgAudit ? " and in Postgres command_audit" : ""}${problems.length ? ` except ${problems.length}` : ""}`,
    problems: first(problems),
  };
}

/** 4. No telemetry update went backwards in seq at any dashboard, per drone. */
export function checkSeq(dashboards: DashboardStats[]): Check {
  const problems: string[] = [];
  let frames = 0;
  let repeats = 0;
  let unexplained = 0;
  let backwards = 0;
  for (const d of dashboards) {
    frames += d.telemetry;
    repeats += d.repeats;
    unexplained += d.repeatsUnexplained;
    backwards += d.backwardsTotal;
    for (const b of d.backwards.slice(0, 3)) problems.push(`${d.name}: ${b.drone} seq ${b.seq} after ${b.prev}`);
  }
  return {
    name: "no telemetry went backwards in seq at any dashboard",
    pass: backwards === 0,
    numbers: `${frames} updates at ${dashboards.length} dashboards; ${backwards} backwards; ${repeats} repeats of the latest seq (${repeats - unexplained} the current state re-sent on a resubscribe, ${unexplained} other)`,
    problems: first(problems),
  };
}

export type FaultRecord = {
  kind: string;
  /** Seconds since the run started. */
  at_s: number;
  duration_ms: number;
  detail: string;
  /** From the end of the fault until every drone had sent fresh telemetry to a dashboard. */
  recovery_ms: number | null;
  bound_ms: number;
};

/** 5. Every drone is live again within the stated bound after each fault. */
export function checkRecovery(faults: FaultRecord[]): Check {
  const problems: string[] = [];
  for (const f of faults) {
    if (f.recovery_ms === null) problems.push(`${f.kind} at ${f.at_s} s: not every drone was live again within ${f.bound_ms / 1000} s`);
    else if (f.recovery_ms > f.bound_ms) problems.push(`${f.kind} at ${f.at_s} s: ${f.recovery_ms} ms > ${f.bound_ms} ms`);
  }
  const worst = new Map<string, number>();
  for (const f of faults) worst.set(f.kind, Math.max(worst.get(f.kind) ?? 0, f.recovery_ms ?? Infinity));
  return {
    name: "every drone live again within the bound after each fault",
    pass: problems.length === 0 && faults.length > 0,
    numbers: `${faults.length} faults; worst recovery: ${[...worst].map(([k, v]) => `${k} ${Number.isFinite(v) ? (v / 1000).toFixed(1) : "∞"} s`).join(", ")}`,
    problems: first(problems),
  };
}

export type PgRows = {
  missions: Map<string, string>;
  events: Map<string, string>;
  /** created_at (= detected_at) of each coordination event, ms. */
  eventTimes: Map<string, number>;
  alerts: Map<string, boolean>;
  audit: Map<string, string>;
  snapshots: Map<string, Set<number>>;
  snapshotRows: number;
  duplicateKeys: number;
};
export type EdgeLists = {
  missions: Map<string, string>;
  events: Map<string, string>;
  /** The edge lists at most 1,000 coordination events, newest first: when it was full, the
   * detection time of the oldest listed (older rows in Postgres cannot be compared). */
  eventsListedFrom: number | null;
  /** Alerts the dashboards saw (id → cleared?) plus the edge's active ones. */
  alerts: Map<string, boolean>;
  audit: Map<string, string>;
  outboxPending: number;
  snapshotsThinned: number;
};

/** 6. Postgres holds every mission, coordination event, alert and audit row exactly once, in its
 * final state. Compares after the final flush. */
export function checkPostgres(edge: EdgeLists, pg: PgRows): Check {
  const problems: string[] = [];
  /** Compare one kind; returns how many Postgres rows were allowed without an edge counterpart. */
  const same = (what: string, e: Map<string, string | boolean>, p: Map<string, string | boolean>, extraAllowed: (id: string) => boolean): number => {
    let allowed = 0;
    for (const [id, v] of e) {
      if (!p.has(id)) problems.push(`${what} ${id} missing in Postgres`);
      else if (p.get(id) !== v) problems.push(`${what} ${id}: edge ${String(v)}, Postgres ${String(p.get(id))}`);
    }
    for (const id of p.keys()) {
      if (e.has(id)) continue;
      if (extraAllowed(id)) allowed++;
      else problems.push(`${what} ${id} in Postgres but not at the edge`);
    }
    return allowed;
  };
  const never = () => false;
  same("mission", edge.missions, pg.missions, never);
  // `<=`: one detection pass opens several events at the same instant, and the edge's LIMIT may
  // cut among them.
  const from = edge.eventsListedFrom;
  const unlisted = same("coordination event", edge.events, pg.events, (id) => from !== null && (pg.eventTimes.get(id) ?? Infinity) <= from);
  same("command", edge.audit, pg.audit, never);
  // The dashboards may have missed alerts while reconnecting: every alert they saw must be there.
  same("alert", edge.alerts, pg.alerts, () => true);
  if (pg.duplicateKeys > 0) problems.push(`${pg.duplicateKeys} duplicate keys`);
  if (edge.outboxPending > 0) problems.push(`${edge.outboxPending} rows still in the outbox after the final flush`);
  return {
    name: "Postgres holds every mission, event, alert and audit row exactly once",
    pass: problems.length === 0,
    numbers: `missions ${pg.missions.size}/${edge.missions.size}, coordination events ${pg.events.size}/${edge.events.size}${unlisted ? ` (${unlisted} not among the edge's 1,000 newest: unique, not compared)` : ""}, audit ${pg.audit.size}/${edge.audit.size}, alerts ${pg.alerts.size} (dashboards saw ${edge.alerts.size}); duplicate keys ${pg.duplicateKeys}; outbox left ${edge.outboxPending}`,
    problems: first(problems),
  };
}

/** 7. Snapshot loss only where the documented downsampling (outbox thinning) says so, counted. */
export function checkSnapshots(observed: Map<string, Set<number>>, pg: PgRows, thinned: number, since: number, until: number): Check {
  let slots = 0;
  const missing: string[] = [];
  for (const [drone, set] of observed) {
    for (const slot of set) {
      if (slot < since || slot > until) continue;
      slots++;
      if (!pg.snapshots.get(drone)?.has(slot)) missing.push(`${drone} @ ${new Date(slot).toISOString()}`);
    }
  }
  return {
    name: "snapshot loss only as documented (thinning), and counted",
    pass: missing.length <= thinned,
    numbers: `${pg.snapshotRows} snapshot rows in Postgres; ${slots} drone×10 s slots with telemetry at a dashboard; ${missing.length} missing; ${thinned} thinned by the outbox bound`,
    problems: first(missing),
  };
}

/** 8. No token in any log line of the run. */
export function checkTokens(lines: { source: string; text: string }[], tokens: string[]): Check {
  const problems: string[] = [];
  const needles = tokens.flatMap((t) => [t, t.split(".")[2] ?? t]).filter((s) => s.length >= 16);
  let scanned = 0;
  for (const l of lines) {
    scanned++;
    if (needles.some((n) => l.text.includes(n))) problems.push(`${l.source}: ${l.text.slice(0, 120)}`);
    else if (/access_token=|authorization:\s*bearer\s+\S/i.test(l.text)) problems.push(`${l.source}: credential-looking text: ${l.text.slice(0, 120)}`);
  }
  return {
    name: "no token in the relay's or the edge's log output",
    pass: problems.length === 0,
    numbers: `${scanned} lines scanned (${lines.filter((l) => l.source === "relay").length} relay, ${lines.filter((l) => l.source === "edge").length} edge)`,
    problems: first(problems),
  };
}
