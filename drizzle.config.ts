import { defineConfig } from "drizzle-kit";

// `npm run db:generate` (drizzle-kit generate) turns drizzle/schema.ts into SQL migrations under
// drizzle/migrations; they are committed and applied by scripts/db.ts runMigrations() at start-up.
// Generating needs no database; DATABASE_URL is only read by drizzle-kit commands that connect.
export default defineConfig({
  dialect: "postgresql",
  schema: "./drizzle/schema.ts",
  out: "./drizzle/migrations",
  ...(process.env.DATABASE_URL ? { dbCredentials: { url: process.env.DATABASE_URL } } : {}),
  strict: true,
  verbose: true,
});
