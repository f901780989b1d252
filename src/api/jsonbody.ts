// Reading a JSON request body safely: a size limit (413) and a nesting limit (Go's encoding/json stops at
// 10000 levels), both checked before JSON.parse builds anything, so that a 100,000-deep value never
// reaches code that recurses over it (validation, the store, JSON.stringify). moby's CheckForJSON too:
// a body on a JSON endpoint must say Content-Type application/json (its guard against cross-site POSTs).
import type http from 'node:http';
import { LoomError, invalidParameter } from '../util/errors.ts';

/** JSON bodies larger than this are refused (413); streamed bodies (tar archives) are not read through here. */
export const MAX_JSON_BODY = 16 << 20;
/** encoding/json's maxNestingDepth */
export const MAX_JSON_DEPTH = 10_000;

/** moby's httputils.CheckForJSON: no Content-Type is fine only without a body; else application/json. */
export function checkForJson(headers: http.IncomingHttpHeaders, hasBody: boolean): void {
  const ct = headers['content-type'] ?? '';
  if (ct === '' && !hasBody) return;
  const media = ct.split(';')[0]!.trim().toLowerCase();
  if (media !== 'application/json') throw invalidParameter(`unsupported Content-Type header (${ct}): must be 'application/json'`);
}

export function tooLarge(): LoomError {
  return new LoomError(413, `request body too large: the limit for JSON bodies is ${MAX_JSON_BODY} bytes`);
}

/** Parses a body's text; undefined for an empty one. Nesting is counted outside strings in one pass. */
export function parseJsonBody(text: string): unknown {
  if (!text.trim()) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) throw invalidParameter(`invalid character '${text[i]}' exceeded max depth`);
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalidParameter(`invalid JSON in request body: ${(e as Error).message}`);
  }
}
