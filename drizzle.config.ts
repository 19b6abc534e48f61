import { defineConfig } from 'drizzle-kit';

// drizzle-kit generates db/migrations from db/schema.ts. Hand-written SQL (triggers, the SQL API,
// views) lives in custom migrations made with `npx drizzle-kit generate --custom --name <what>`.
export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema.ts',
  out: './db/migrations',
  dbCredentials: { url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  migrations: { schema: 'drizzle', table: '__crier_migrations' },
});
