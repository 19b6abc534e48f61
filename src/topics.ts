// Topic names and AMQP-style topic patterns ("*" = exactly one segment, "#" = zero or more),
// the same rules as crier.topic_valid / crier.topic_matches in SQL.
import { CrierError, quote } from './errors.ts';
import { MAX_TOPIC_BYTES, overLimit } from './limits.ts';

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
      `${quote(topic)} is not a valid topic: use dot-separated segments of letters, digits, "_" and "-" (e.g. "order.created"), at most ${maxLength} characters`,
    );
  }
}

export function assertPattern(pattern: unknown): asserts pattern is string {
  if (!isValidPattern(pattern)) {
    throw new CrierError(
      'CRIER_INVALID_PATTERN',
      `${quote(pattern)} is not a valid topic pattern: dot-separated segments, each a word, "*" (one segment) or "#" (zero or more), e.g. "order.*" or "order.#"`,
    );
  }
}

/**
 * Whether `topic` matches `pattern`, in O(topic segments × pattern segments): the set of topic
 * positions each pattern prefix can reach, one pattern segment at a time. (A backtracking regex took
 * exponential time on patterns of many "#" segments.)
 */
export function topicMatches(topic: string, pattern: string): boolean {
  assertPattern(pattern);
  const words = topic.split('.');
  // No pattern segment matches an empty one ("a..b", ""), as in SQL.
  if (words.includes('')) return false;
  // reachable[i]: the pattern read so far can consume exactly the first i topic segments.
  let reachable = new Array<boolean>(words.length + 1).fill(false);
  reachable[0] = true;
  for (const segment of pattern.split('.')) {
    const next = new Array<boolean>(words.length + 1).fill(false);
    if (segment === '#') {
      // zero or more segments: every position from the first reachable one on
      const first = reachable.indexOf(true);
      if (first === -1) return false;
      next.fill(true, first);
    } else {
      for (let i = 0; i < words.length; i++) {
        if (reachable[i] && (segment === '*' || segment === words[i])) next[i + 1] = true;
      }
    }
    reachable = next;
  }
  return reachable[words.length]!;
}
