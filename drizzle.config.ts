import { defineConfig } from 'drizzle-kit';

// drizzle-kit generates db/migrations (tables only) from db/schema.ts. Functions, triggers and views
// live in db/sql, which migrate() applies after the tables.
export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema.ts',
  out: './db/migrations',
  dbCredentials: { url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  migrations: { schema: 'drizzle', table: '__crier_migrations' },
});
