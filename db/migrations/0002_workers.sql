CREATE TABLE "crier"."registered_workers" (
	"id" text PRIMARY KEY NOT NULL,
	"host" text NOT NULL,
	"pid" integer NOT NULL,
	"version" text NOT NULL,
	"subscriptions" text[] NOT NULL,
	"heartbeat_ms" integer NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"stopped_at" timestamp with time zone,
	CONSTRAINT "registered_workers_heartbeat_positive" CHECK ("crier"."registered_workers"."heartbeat_ms" > 0)
);
