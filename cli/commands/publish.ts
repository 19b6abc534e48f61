// crier publish: publish one event through the library's publish path (validation, fan-out trigger).
import { createAdmin } from '../../src/admin/index.ts';
import { openClient } from '../../src/connection.ts';
import { createCrier } from '../../src/crier.ts';
import { CrierError, quote } from '../../src/errors.ts';
import { assertTopic } from '../../src/topics.ts';
import { listOption, stringOption, UsageError, type Command } from '../command.ts';
import { printJson } from '../output.ts';

export const publishCommand: Command = {
  path: ['publish'],
  summary: 'publish one event (JSON payload from the argument, or - for stdin)',
  args: '<topic> <json|->',
  positionals: [2, 2],
  options: {
    key: { type: 'string', value: 'KEY', description: 'the event key (e.g. the order id)' },
    header: { type: 'string', multiple: true, value: 'NAME=VALUE', description: 'a header; repeat for several' },
  },
  examples: [
    `crier publish order.created '{"id": 42, "total": 99.5}' --key 42`,
    `echo '{"id": 42}' | crier publish order.shipped - --key 42 --header correlationId=checkout-7`,
  ],
  async run({ positionals, values, databaseUrl, global, out, readStdin }) {
    const [topic, json] = positionals as [string, string];
    assertTopic(topic);
    const payload = parsePayload(json === '-' ? readStdin() : json);
    const headers: Record<string, string> = {};
    for (const header of listOption(values, 'header')) {
      const at = header.indexOf('=');
      if (at <= 0) throw new UsageError(`--header ${quote(header)}: expected NAME=VALUE`);
      headers[header.slice(0, at)] = header.slice(at + 1);
    }
    const sql = openClient(databaseUrl(), { max: 1, connect_timeout: 10 });
    try {
      const crier = createCrier({ schema: global.schema });
      const event = await crier.publish(sql, topic, payload, { key: stringOption(values, 'key') ?? null, headers });
      const { deliveries } = await createAdmin({ connection: sql, schema: crier.schema }).getEvent(event.id);
      const subscriptions = deliveries.map((d) => d.subscription);
      if (out.json) return printJson(out, { ...event, subscriptions });
      out.write(
        `published event ${event.id} (${event.uuid}) on ${event.topic}: ` +
          (subscriptions.length === 0 ? 'no subscription receives it\n' : `queued for ${subscriptions.join(', ')}\n`),
      );
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
};

function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CrierError('CRIER_INVALID_PAYLOAD', `payload is not valid JSON (${(error as Error).message}); nothing was published`);
  }
}
