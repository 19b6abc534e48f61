// A NestJS 11 application as Nest's CLI sets one up (CommonJS, moduleResolution node10, legacy
// decorators with emitted metadata): crier/nestjs's module, a decorated handler, CrierPublisher
// inside a postgres.js transaction, and a graceful close.
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import postgres from 'postgres';
import { createCrier } from 'crier';
import { CrierHandler, CrierModule, CrierPublisher, type CrierEvent } from 'crier/nestjs';

const url = process.env.DATABASE_URL!;
const topic = `consumer.${process.env.CONSUMER!}`;
let handled: CrierEvent | undefined;

@Injectable()
class Handlers {
  @CrierHandler({ subscription: topic.replace('.', '-'), topics: [topic], maxAttempts: 3 })
  async onEvent(event: CrierEvent): Promise<void> {
    handled = event;
  }
}

@Module({ imports: [CrierModule.forRoot({ connection: url, logger: false })], providers: [Handlers] })
class AppModule {}

async function main(): Promise<void> {
  await createCrier().migrate(url);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  app.enableShutdownHooks();
  const publisher = app.get(CrierPublisher);
  const sql = postgres(url, { onnotice: () => {} });
  try {
    await sql.begin((tx) => publisher.publish(tx, topic, { from: 'nestjs' }));
    for (let waited = 0; !handled && waited < 30_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    console.log(JSON.stringify({ topic: handled?.topic, payload: handled?.payload }));
  } finally {
    await app.close();
    await sql.end();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
