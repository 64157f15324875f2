/**
 * The fleet configuration (geofence, no-fly zones, separation, thresholds, limits) as the fleet
 * object keeps it: one row in the `config` table (schema.ts), held in memory, replaced whole on
 * each write with the version one higher. Validation happens before it gets here (the Worker's
 * PUT /config route parses the body with edge/domain/fleet-config.ts).
 */
import { defaultFleetConfig, parseFleetConfig, type FleetConfig } from "../domain/fleet-config";

export class ConfigStore {
  private config: FleetConfig = defaultFleetConfig();

  constructor(private readonly sql: SqlStorage) {}

  /** The configuration in force. */
  get current(): FleetConfig {
    return this.config;
  }

  load(): void {
    const row = this.sql.exec<{ version: number; body: string }>(`SELECT version, body FROM config WHERE id = 1`).toArray()[0];
    if (!row) return;
    // Stored by put() below; parsed again so a default added since fills in.
    const parsed = parseFleetConfig(JSON.parse(row.body));
    if (parsed.ok) this.config = { ...parsed.config, version: row.version };
  }

  /** Store a validated configuration as the next version and return it as stored. */
  put(config: FleetConfig, by: string, now: number): FleetConfig {
    const next = { ...config, version: this.config.version + 1 };
    this.sql.exec(
      `INSERT INTO config (id, version, body, updated_at, updated_by) VALUES (1, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET version = excluded.version, body = excluded.body, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      next.version,
      JSON.stringify(next),
      now,
      by,
    );
    this.config = next;
    return next;
  }
}
