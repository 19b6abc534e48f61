ALTER TABLE "crier"."subscriptions" ADD COLUMN "topic_heads" text[] GENERATED ALWAYS AS (crier.topic_pattern_heads(topics)) STORED;--> statement-breakpoint
CREATE INDEX "subscriptions_topic_heads_idx" ON "crier"."subscriptions" USING gin ("topic_heads");--> statement-breakpoint
-- Edited by hand: NOT VALID, so that adding the check does not scan (and lock) the whole log; it
-- holds for every row written from now on. Named to sort before events_topic_valid: CHECKs run in
-- name order, so a topic past its limit gets CRIER_TOPIC_TOO_LONG.
ALTER TABLE "crier"."events" ADD CONSTRAINT "events_byte_limits" CHECK (crier.event_within_limits(topic, key, headers)) NOT VALID;