// Topic patterns at the type level: which catalog topics a subscription pattern ("order.*",
// "order.#", "#") matches, with the same rules as topicMatches() and crier.topic_matches in SQL.
// Only types live here; nothing of it exists at run time.

type Segments<S extends string> = S extends `${infer Head}.${infer Rest}` ? [Head, ...Segments<Rest>] : [S];

type MatchSegments<Topic extends string[], Pattern extends string[]> = Pattern extends []
  ? Topic extends []
    ? true
    : false
  : Pattern extends ['#', ...infer PatternRest extends string[]]
    ? // "#" stands for zero segments, or swallows one and stays.
      MatchSegments<Topic, PatternRest> extends true
      ? true
      : Topic extends [string, ...infer TopicRest extends string[]]
        ? MatchSegments<TopicRest, Pattern>
        : false
    : Pattern extends [infer Head extends string, ...infer PatternRest extends string[]]
      ? Topic extends [infer TopicHead extends string, ...infer TopicRest extends string[]]
        ? Head extends '*' | TopicHead
          ? MatchSegments<TopicRest, PatternRest>
          : false
        : false
      : false;

/** The members of `Topics` that `Pattern` matches (all of them when the pattern is not a literal). */
export type MatchingTopics<Topics extends string, Pattern extends string> = string extends Pattern
  ? Topics
  : Pattern extends unknown // one pattern at a time, then one topic at a time
    ? Topics extends unknown
      ? MatchSegments<Segments<Topics>, Segments<Pattern>> extends true
        ? Topics
        : never
      : never
    : never;

/** The patterns among `Patterns` that match none of `Topics`. */
export type UnmatchedPatterns<Topics extends string, Patterns extends string> = Patterns extends unknown
  ? [MatchingTopics<Topics, Patterns>] extends [never]
    ? Patterns
    : never
  : never;
