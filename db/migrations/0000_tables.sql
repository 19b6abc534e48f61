CREATE SCHEMA "crier";
--> statement-breakpoint
CREATE TABLE "crier"."deliveries" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "crier"."deliveries_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"event_id" bigint NOT NULL,
	"subscription" text NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"available_at" timestamp with time zone DEFAULT now() NOT NULL,
	"worker" text,
	"locked_until" timestamp with time zone,
	"last_error" text,
	"last_error_stack" text,
	"errors" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "deliveries_state_valid" CHECK ("crier"."deliveries"."state" in ('pending', 'running', 'done', 'dead'))
);
--> statement-breakpoint
CREATE TABLE "crier"."events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "crier"."events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"uuid" uuid DEFAULT gen_random_uuid() NOT NULL,
	"topic" text NOT NULL,
	"key" text,
	"payload" jsonb NOT NULL,
	"headers" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "events_uuid_unique" UNIQUE("uuid"),
	CONSTRAINT "events_topic_valid" CHECK (length("crier"."events"."topic") <= 255 and "crier"."events"."topic" ~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$'),
	CONSTRAINT "events_headers_object" CHECK (jsonb_typeof("crier"."events"."headers") = 'object')
);
--> statement-breakpoint
CREATE TABLE "crier"."parked_workers" (
	"subscription" text NOT NULL,
	"worker" text NOT NULL,
	"since" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "parked_workers_subscription_worker_pk" PRIMARY KEY("subscription","worker")
);
--> statement-breakpoint
CREATE TABLE "crier"."route_epoch" (
	"singleton" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"epoch" bigint DEFAULT 1 NOT NULL,
	CONSTRAINT "route_epoch_singleton" CHECK ("crier"."route_epoch"."singleton")
);
--> statement-breakpoint
CREATE TABLE "crier"."subscriptions" (
	"name" text PRIMARY KEY NOT NULL,
	"topics" text[] NOT NULL,
	"max_attempts" integer DEFAULT 5 NOT NULL,
	"backoff_base_ms" integer DEFAULT 1000 NOT NULL,
	"backoff_max_ms" integer DEFAULT 300000 NOT NULL,
	"lease_ms" integer DEFAULT 30000 NOT NULL,
	"paused" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "subscriptions_name_valid" CHECK ("crier"."subscriptions"."name" ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$'),
	CONSTRAINT "subscriptions_max_attempts_positive" CHECK ("crier"."subscriptions"."max_attempts" >= 1),
	CONSTRAINT "subscriptions_backoff_valid" CHECK ("crier"."subscriptions"."backoff_base_ms" >= 0 and "crier"."subscriptions"."backoff_max_ms" >= "crier"."subscriptions"."backoff_base_ms"),
	CONSTRAINT "subscriptions_lease_positive" CHECK ("crier"."subscriptions"."lease_ms" >= 100)
);
--> statement-breakpoint
CREATE TABLE "crier"."topic_routes" (
	"topic" text PRIMARY KEY NOT NULL,
	"subscriptions" text[] NOT NULL,
	"epoch" bigint NOT NULL
);
--> statement-breakpoint
CREATE INDEX "deliveries_pending_idx" ON "crier"."deliveries" USING btree ("subscription","available_at","id") WHERE "crier"."deliveries"."state" = 'pending';--> statement-breakpoint
CREATE INDEX "deliveries_running_idx" ON "crier"."deliveries" USING btree ("locked_until") WHERE "crier"."deliveries"."state" = 'running';--> statement-breakpoint
CREATE INDEX "deliveries_dead_idx" ON "crier"."deliveries" USING btree ("subscription","finished_at") WHERE "crier"."deliveries"."state" = 'dead';--> statement-breakpoint
CREATE INDEX "deliveries_event_idx" ON "crier"."deliveries" USING btree ("event_id");