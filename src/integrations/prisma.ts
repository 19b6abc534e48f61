// crier/prisma: publish inside a Prisma interactive transaction (`prisma.$transaction(async (tx) =>
// ...)`), through `$queryRawUnsafe`, which takes Postgres's own `$1` placeholders. crier's SQL
// returns ids as text, so Prisma's BigInt mapping of int8 never reaches crier.
import type { QueryExecutor } from '../executor.ts';

/** The part of a Prisma client or interactive-transaction client crier uses. */
export interface PrismaLike {
  $queryRawUnsafe(query: string, ...values: any[]): PromiseLike<unknown>;
}

/** `tx` (from `prisma.$transaction(async (tx) => ...)`) as an executor for crier.publish. */
export function prismaExecutor(tx: PrismaLike): QueryExecutor {
  return { query: (text, parameters = []) => tx.$queryRawUnsafe(text, ...parameters) };
}
