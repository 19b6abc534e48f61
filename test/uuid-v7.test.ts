// Event uuids drawn by publishing are time-ordered (version 7); SQL producers keep the random default.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCrier } from './support/history.ts';
import { uuidV7 } from '../src/uuid-v7.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('uuidV7: version 7, variant 10, the millisecond timestamp first, random after it', () => {
  const at = Date.UTC(2026, 10, 26, 12, 0, 0, 123);
  const a = uuidV7(at);
  const b = uuidV7(at);
  assert.match(a, v7);
  assert.equal(a.replaceAll('-', '').slice(0, 12), at.toString(16).padStart(12, '0'));
  assert.notEqual(a, b, 'same millisecond, different random bits');
  assert.ok(uuidV7(at) < uuidV7(at + 1), 'a later millisecond sorts after');
  const many = new Set(Array.from({ length: 5000 }, () => uuidV7()));
  assert.equal(many.size, 5000);
});

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('uuid_v7');
});
after(async () => {
  await db.drop();
});

test('published events get v7 uuids in publish order; SQL crier.publish keeps gen_random_uuid', async () => {
  const crier = createCrier();
  const first = await crier.publish(db.sql, 'uuid.check', {});
  await new Promise((resolve) => setTimeout(resolve, 2));
  const batch = await crier.publishMany(db.sql, [{ topic: 'uuid.check', payload: {} }, { topic: 'uuid.check', payload: {}, idempotencyKey: 'k1' }]);
  for (const event of [first, ...batch]) assert.match(event.uuid, v7);
  assert.ok(first.uuid < batch[0]!.uuid && first.uuid < batch[1]!.uuid, 'a later publish sorts after');
  const [stored] = await db.sql`SELECT uuid::text FROM crier.events WHERE id = ${batch[1]!.id}`;
  assert.equal(stored!.uuid, batch[1]!.uuid, 'the idempotent path stores the uuid it returns');
  const [published] = await db.sql`SELECT crier.publish('uuid.check', '{}')::text AS id`;
  const [fromSql] = await db.sql`SELECT uuid::text FROM crier.events WHERE id = ${published!.id}`;
  assert.match(fromSql!.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4/, 'SQL producers: the column default');
});
