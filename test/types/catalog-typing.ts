// Compile-time checks of the typed catalog API, run by `npm run typecheck` (tsc over test/).
// Every `@ts-expect-error` line must fail to compile; if one ever compiles, tsc reports the
// directive as unused and the typecheck fails. Nothing here runs.
import { z } from 'zod';
import { createTypedCrier, defineCatalog, type CatalogEvent, type Executor } from '../../src/index.ts';
import { catalog, OrderCreatedV1, OrderCreatedV2 } from '../fixtures/catalog.ts';

declare const tx: Executor;
const crier = createTypedCrier(catalog);

export async function publishing() {
  await crier.publish(tx, 'order.created', { orderId: 'o1', amountCents: 1250, currency: 'EUR' });
  await crier.publish(tx, 'order.shipped', { orderId: 'o1', carrier: 'dhl' }, { key: 'o1' });

  // @ts-expect-error unknown topic
  await crier.publish(tx, 'order.deleted', { orderId: 'o1' });
  // @ts-expect-error wrong type: amountCents is a number
  await crier.publish(tx, 'order.created', { orderId: 'o1', amountCents: '12.50', currency: 'EUR' });
  // @ts-expect-error missing property: currency
  await crier.publish(tx, 'order.created', { orderId: 'o1', amountCents: 1250 });
  // @ts-expect-error an old version's shape is not what producers publish: the latest version is
  await crier.publish(tx, 'order.created', { orderId: 'o1', total: 12.5 });
  // @ts-expect-error not one of the enum's values
  await crier.publish(tx, 'order.shipped', { orderId: 'o1', carrier: 'fedex' });

  await crier.publishMany(tx, [
    { topic: 'order.shipped', payload: { orderId: 'o1', carrier: 'ups' } },
    { topic: 'payment.captured', payload: { paymentId: 'b5f0a8b4-7f0e-4c48-9a3e-0d1c7c6c2b11', amountCents: 5 }, key: 'p' },
  ]);
  await crier.publishMany(tx, [
    // @ts-expect-error the payload of another topic
    { topic: 'order.shipped', payload: { paymentId: 'x', amountCents: 5 } },
  ]);
}

export const shipping = crier.subscription({
  name: 'shipping',
  topics: ['order.*'],
  handler: async (event) => {
    // @ts-expect-error order.* includes order.created, which has no carrier
    void event.payload.carrier;
    if (event.topic === 'order.shipped') {
      const carrier: 'ups' | 'dhl' = event.payload.carrier;
      void carrier;
    } else {
      const topic: 'order.created' = event.topic;
      const cents: number = event.payload.amountCents;
      // @ts-expect-error handlers see the latest version only: v1's total is gone
      void event.payload.total;
      void topic, cents;
    }
  },
});

export const everything = crier.subscription({
  name: 'audit',
  topics: ['#'],
  handler: (event) => {
    const topic: 'order.created' | 'order.shipped' | 'payment.captured' = event.topic;
    void topic;
  },
});

export const payments = crier.subscription({
  name: 'payments',
  topics: ['payment.captured', 'order.#'],
  handler: (event) => {
    const topic: 'payment.captured' | 'order.created' | 'order.shipped' = event.topic;
    if (event.topic === 'payment.captured') void (event.payload.paymentId satisfies string);
    if (event.topic === 'order.shipped') void (event.payload.carrier satisfies 'ups' | 'dhl');
    // @ts-expect-error payment.captured | order.created | order.shipped: never order.refunded
    const refunded: 'order.refunded' = event.topic;
    void topic, refunded;
  },
});

crier.subscription({
  name: 'nothing',
  // @ts-expect-error no topic of the catalog matches "invoice.*"
  topics: ['invoice.*'],
  handler: () => {},
});

// A named event type for a handler written elsewhere.
export function onShipped(event: CatalogEvent<typeof catalog, 'order.shipped'>): string {
  return event.payload.carrier;
}

// Upcasters are typed: from each version's output to the next version's input.
defineCatalog({
  'order.created': {
    versions: [OrderCreatedV1, OrderCreatedV2],
    // @ts-expect-error the upcaster must produce a v2 (currency is missing)
    upcast: [(v1) => ({ orderId: v1.orderId, amountCents: v1.total })],
  },
});
defineCatalog({
  // @ts-expect-error two versions need one upcaster
  'order.created': { versions: [OrderCreatedV1, OrderCreatedV2] },
});
defineCatalog({
  'x.y': {
    versions: [z.object({ a: z.string() }), z.object({ a: z.string(), b: z.number() })],
    upcast: [
      (v1) => ({
        ...v1,
        // @ts-expect-error v1 has no property b
        b: v1.b,
      }),
    ],
  },
});
