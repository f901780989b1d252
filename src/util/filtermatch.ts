// Filter values Docker treats as regular expressions (moby's filters.Args.Match: `ps --filter name=/id=`,
// `network ls --filter name=/id=`): an exact match, else Go's regexp, which runs in linear time. A
// JavaScript RegExp backtracks (`^([0-9a-f]+)+g$` would block the event loop for good), so patterns go
// through re2js, a pure-JS port of RE2 with Go's syntax and guarantees; no native addon to compile.
import { RE2JS } from 're2js';

/** Longer patterns are only compared exactly: matching cost grows with pattern × text, so it stays bounded. */
export const MAX_PATTERN_LENGTH = 1024;

/**
 * A matcher for one filter value, compiled once per request: equal strings match; otherwise the value is
 * a Go regexp searched anywhere in the string (regexp.MatchString). A pattern Go would refuse, or one
 * over the bound, matches nothing but itself, as moby's Match skips patterns that do not compile.
 */
export function filterMatcher(pattern: string): (s: string) => boolean {
  let re: RE2JS | null = null;
  if (pattern.length <= MAX_PATTERN_LENGTH) {
    try {
      re = RE2JS.compile(pattern);
    } catch {
      re = null;
    }
  }
  return (s: string) => s === pattern || (re !== null && re.matcher(s).find());
}

/** Matchers for every value of one filter key; true when the key is absent or any value matches any string. */
export function anyMatch(values: string[] | undefined): (candidates: string[]) => boolean {
  if (!values?.length) return () => true;
  const ms = values.map(filterMatcher);
  return (candidates) => ms.some((m) => candidates.some(m));
}
