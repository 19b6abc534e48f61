// The event every contestant carries: about 200 bytes of JSON, the same for all.
export function makePayload(i: number): { i: number; [k: string]: unknown } {
  return {
    i,
    orderId: `ord_${(100000 + i).toString(36)}`,
    customer: { id: 4242 + (i % 97), tier: 'gold', country: 'SE' },
    lines: [
      { sku: 'SKU-1001', qty: 2, price: 1999 },
      { sku: 'SKU-2002', qty: 1, price: 4999 },
    ],
    note: 'bench payload of about two hundred bytes',
  };
}
