// Topic names and AMQP-style topic patterns ("*" = exactly one segment, "#" = zero or more),
// the same rules as crier.topic_valid / crier.topic_matches in SQL.
import { CrierError } from './errors.ts';
import { MAX_TOPIC_BYTES, overLimit, preview } from './limits.ts';

const topicSyntax = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const patternSyntax = /^([A-Za-z0-9_-]+|\*|#)(\.([A-Za-z0-9_-]+|\*|#))*$/;
// Topics and patterns are ASCII: their limit in bytes is also one in characters.
const maxLength = MAX_TOPIC_BYTES;

export function isValidTopic(topic: unknown): topic is string {
  return typeof topic === 'string' && topic.length <= maxLength && topicSyntax.test(topic);
}

export function isValidPattern(pattern: unknown): pattern is string {
  return typeof pattern === 'string' && pattern.length <= maxLength && patternSyntax.test(pattern);
}

export function assertTopic(topic: unknown): asserts topic is string {
  if (!isValidTopic(topic)) {
    const tooLong = typeof topic === 'string' ? overLimit(topic, MAX_TOPIC_BYTES) : undefined;
    if (tooLong) throw new CrierError('CRIER_TOPIC_TOO_LONG', `the topic ${tooLong}`);
    throw new CrierError(
      'CRIER_INVALID_TOPIC',
      `${preview(topic)} is not a valid topic: use dot-separated segments of letters, digits, "_" and "-" (e.g. "order.created"), at most ${maxLength} characters`,
    );
  }
}

export function assertPattern(pattern: unknown): asserts pattern is string {
  if (!isValidPattern(pattern)) {
    throw new CrierError(
      'CRIER_INVALID_PATTERN',
      `${preview(pattern)} is not a valid topic pattern: dot-separated segments, each a word, "*" (one segment) or "#" (zero or more), e.g. "order.*" or "order.#"`,
    );
  }
}

/** Compiles a pattern the way SQL does: each segment carries its own leading dot. */
export function patternToRegExp(pattern: string): RegExp {
  assertPattern(pattern);
  const body = pattern
    .split('.')
    .map((segment) => (segment === '*' ? '\\.[^.]+' : segment === '#' ? '(\\.[^.]+)*' : `\\.${segment}`))
    .join('');
  return new RegExp(`^${body}$`);
}

export function topicMatches(topic: string, pattern: string): boolean {
  return patternToRegExp(pattern).test(`.${topic}`);
}
