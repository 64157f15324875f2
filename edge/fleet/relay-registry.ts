/**
 * Who speaks for what among a fleet's relays (issue 18; the rules are stated once in
 * edge/protocol/relay.ts):
 *  - a relay_id is bound to the token subject that first said hello with it, for good (an admin
 *    may release it); another subject's hello with it is refused;
 *  - a drone belongs to the relay that first reported it (drones.relay_id) until that relay has
 *    been gone (no open socket) for longer than the stale bound, or an admin reassigns it;
 *  - a token subject may add only so many drones the fleet has never seen: a token bucket of
 *    RELAY_LIMITS.newDronesBurst refilled at MAX_NEW_DRONES_PER_MINUTE.
 * Bindings and "gone since" are stored (table `relays`, schema.ts) so they survive eviction; the
 * new-drone buckets are in memory and start full after an eviction (errs on the relay's side).
 */

export type RelayView = {
  relay_id: string;
  /** The token subject the relay_id is bound to. */
  sub: string;
  connected: boolean;
  bound_at: number;
  seen_at: number;
  /** Since when its last socket is gone; null while connected. */
  gone_at: number | null;
  /** Drones it owns. */
  drones: number;
};

export type ReportVerdict = "ok" | "not_owner" | "too_many_new_drones";

type Relay = { sub: string; boundAt: number; seenAt: number; goneAt: number | null };
type Bucket = { tokens: number; at: number };

export class RelayRegistry {
  private readonly relays = new Map<string, Relay>();
  /** drone → relay_id of its owner. */
  private readonly owners = new Map<string, string>();
  /** token subject → new-drone allowance. */
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly sql: SqlStorage,
    private readonly o: { staleAfterMs: number; newDronesPerMinute: number; newDronesBurst: number },
  ) {}

  /**
   * At object start-up. `open`: relay_ids with an open (hibernated) socket. A relay stored as
   * connected without one lost its socket with the previous instance: gone since now.
   */
  load(now: number, open: ReadonlySet<string>): void {
    for (const r of this.sql.exec<{ relay_id: string; sub: string; bound_at: number; seen_at: number; gone_at: number | null }>(`SELECT * FROM relays`)) {
      const goneAt = open.has(r.relay_id) ? null : (r.gone_at ?? now);
      this.relays.set(r.relay_id, { sub: r.sub, boundAt: r.bound_at, seenAt: r.seen_at, goneAt });
      if (goneAt !== r.gone_at) this.sql.exec(`UPDATE relays SET gone_at = ? WHERE relay_id = ?`, goneAt, r.relay_id);
    }
    for (const r of this.sql.exec<{ drone_id: string; relay_id: string | null }>(`SELECT drone_id, relay_id FROM drones WHERE relay_id IS NOT NULL`)) {
      this.owners.set(r.drone_id, r.relay_id!);
    }
  }

  /**
   * A hello on a socket of token subject `sub`: binds an unknown relay_id to `sub` and marks it
   * connected. Refused when the id is bound to another subject.
   */
  hello(relayId: string, sub: string, now: number): { ok: true } | { ok: false } {
    const r = this.relays.get(relayId);
    if (r && r.sub !== sub) return { ok: false };
    if (r) {
      r.seenAt = now;
      r.goneAt = null;
      this.sql.exec(`UPDATE relays SET seen_at = ?, gone_at = NULL WHERE relay_id = ?`, now, relayId);
    } else {
      this.relays.set(relayId, { sub, boundAt: now, seenAt: now, goneAt: null });
      this.sql.exec(`INSERT INTO relays (relay_id, sub, bound_at, seen_at, gone_at) VALUES (?, ?, ?, ?, NULL)`, relayId, sub, now, now);
    }
    return { ok: true };
  }

  /** The relay's last socket closed. */
  disconnected(relayId: string, now: number): void {
    const r = this.relays.get(relayId);
    if (!r || r.goneAt !== null) return;
    r.goneAt = now;
    this.sql.exec(`UPDATE relays SET gone_at = ? WHERE relay_id = ?`, now, relayId);
  }

  ownerOf(droneId: string): string | undefined {
    return this.owners.get(droneId);
  }

  /**
   * Whether `relayId` may report the drone now: it owns it, nobody does, or its owner is gone for
   * longer than the stale bound. An owner the registry has no binding for (stored before relay
   * identities were bound, or released by an admin) holds nothing.
   */
  mayTake(droneId: string, relayId: string, now: number): boolean {
    const owner = this.owners.get(droneId);
    if (owner === undefined || owner === relayId) return true;
    const r = this.relays.get(owner);
    if (!r) return true;
    return r.goneAt !== null && now - r.goneAt > this.o.staleAfterMs;
  }

  /**
   * One telemetry item from relay `relayId` (token subject `sub`): may it count? `isNew`: the fleet
   * has never seen the drone, which costs one from the subject's new-drone allowance. Changes
   * nothing but that allowance; `own` records the owner once the sample is accepted.
   */
  check(droneId: string, relayId: string, sub: string, isNew: boolean, now: number): ReportVerdict {
    if (!this.mayTake(droneId, relayId, now)) return "not_owner";
    if (isNew && !this.takeNew(sub, now)) return "too_many_new_drones";
    return "ok";
  }

  /** An accepted sample: `relayId` owns the drone (first report, or taking over from a relay long gone). */
  own(droneId: string, relayId: string): void {
    if (this.owners.get(droneId) !== relayId) this.owners.set(droneId, relayId);
  }

  /** Admin: give the drone to `relayId`, or to nobody (the next relay to report it takes it). */
  reassign(droneId: string, relayId: string | null): void {
    if (relayId === null) this.owners.delete(droneId);
    else this.owners.set(droneId, relayId);
    this.sql.exec(`UPDATE drones SET relay_id = ? WHERE drone_id = ?`, relayId, droneId);
  }

  /** Admin: forget a relay_id's binding (a site's token subject changed). Refused while it is connected. */
  release(relayId: string): "released" | "connected" | "unknown" {
    const r = this.relays.get(relayId);
    if (!r) return "unknown";
    if (r.goneAt === null) return "connected";
    this.relays.delete(relayId);
    this.sql.exec(`DELETE FROM relays WHERE relay_id = ?`, relayId);
    return "released";
  }

  isKnown(relayId: string): boolean {
    return this.relays.has(relayId);
  }

  list(): RelayView[] {
    const counts = new Map<string, number>();
    for (const owner of this.owners.values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    return [...this.relays].map(([relay_id, r]) => ({
      relay_id,
      sub: r.sub,
      connected: r.goneAt === null,
      bound_at: r.boundAt,
      seen_at: r.seenAt,
      gone_at: r.goneAt,
      drones: counts.get(relay_id) ?? 0,
    }));
  }

  /** Entries held, for the leak checks. */
  get counts(): { relays: number; owners: number; newDroneBuckets: number } {
    return { relays: this.relays.size, owners: this.owners.size, newDroneBuckets: this.buckets.size };
  }

  private takeNew(sub: string, now: number): boolean {
    const { newDronesBurst: burst, newDronesPerMinute: perMinute } = this.o;
    const cap = Math.max(burst, perMinute);
    const b = this.buckets.get(sub) ?? { tokens: cap, at: now };
    b.tokens = Math.min(cap, b.tokens + (Math.max(0, now - b.at) / 60_000) * perMinute);
    b.at = now;
    this.buckets.set(sub, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
