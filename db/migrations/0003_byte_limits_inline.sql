ALTER TABLE "crier"."events" DROP CONSTRAINT "events_byte_limits";--> statement-breakpoint
-- Edited by hand, as 0001: NOT VALID, so that replacing the check does not scan (and lock) the whole
-- log; it holds for every row written from now on (the rows before were checked by 0001's).
ALTER TABLE "crier"."events" ADD CONSTRAINT "events_byte_limits" CHECK ((octet_length(topic) <= 255 and coalesce(octet_length(key), 0) <= 1024 and coalesce(octet_length(headers ->> 'correlationId'), 0) <= 1024 and coalesce(octet_length(headers ->> 'causationId'), 0) <= 1024) or crier.event_within_limits(topic, key, headers)) NOT VALID;
