/**
 * The Postgres schema, in one place. Edit this file, then `npm run db:generate` writes a new SQL
 * migration into drizzle/migrations (commit it); scripts/db.ts applies pending migrations when the
 * local stack starts. Naming: snake_case tables and columns, `fleet_id` on everything fleet-scoped,
 * timestamps with time zone.
 *
 * Sections: registry (fleets, drones) first; the analytics tables (missions, charging_sessions,
 * coordination_events, hourly aggregates, …) go in their own section below, each keyed by fleet_id
 * with a natural or client-generated key so the outbox flush can upsert idempotently.
 */
import { sql } from "drizzle-orm";
import { integer, jsonb, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";

/** Timestamps are UTC instants; `now()` on insert. */
const createdAt = (name: string) => timestamp(name, { withTimezone: true, mode: "date" }).notNull().defaultNow();

// ------------------------------------------------------------------------------------ registry

/** One row per fleet. `config` is the fleet's settings document; `config_version` grows with each
 * change so readers can tell whether the copy they hold is current. */
export const fleets = pgTable("fleets", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: createdAt("created_at"),
  config: jsonb("config").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  configVersion: integer("config_version").notNull().default(0),
});

/** Every drone a fleet has seen, with first and latest sighting (written by the outbox flush). */
export const drones = pgTable(
  "drones",
  {
    fleetId: text("fleet_id")
      .notNull()
      .references(() => fleets.id, { onDelete: "cascade" }),
    droneId: text("drone_id").notNull(),
    firstSeenAt: createdAt("first_seen_at"),
    lastSeenAt: createdAt("last_seen_at"),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.droneId] })],
);

export type Fleet = typeof fleets.$inferSelect;
export type NewFleet = typeof fleets.$inferInsert;
export type Drone = typeof drones.$inferSelect;
export type NewDrone = typeof drones.$inferInsert;

// ------------------------------------------------------------------------------------ analytics
// (missions, charging_sessions, coordination_events, … are added by the analytics issue)
