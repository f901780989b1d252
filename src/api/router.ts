// The route table the API server dispatches on, and what every route file shares: request context,
// query helpers, JSON and no-content replies, Docker's stream framing and connection hijacking.
import http from 'node:http';
import type net from 'node:net';
import type { Daemon } from '../daemon.ts';
import { invalidParameter } from '../util/errors.ts';
import { parseJsonBody } from './jsonbody.ts';

export const API_VERSION = '1.50';
export const MIN_API_VERSION = '1.24';
export const LOOM_VERSION = '0.1.0';

export type Params = Record<string, string>;
export interface Ctx {  req: http.IncomingMessage;
  res: http.ServerResponse;
  params: Params;
  query: URLSearchParams;
  body: () => Promise<any>;
  /** set for requests that arrived as HTTP Upgrade (hijack) */
  socket?: net.Socket;
  head?: Buffer;
}
export type Handler = (d: Daemon, ctx: Ctx) => Promise<unknown> | unknown;

export const routes: { method: string; re: RegExp; keys: string[]; fn: Handler }[] = [];
export function route(method: string, pattern: string, fn: Handler): void {
  const keys: string[] = [];
  const re = new RegExp('^' + pattern.replace(/\{(\w+)(\*)?\}/g, (_, k, star) => {
    keys.push(k);
    return star ? '(.+)' : '([^/]+)';
  }) + '$');
  routes.push({ method, re, keys, fn });
}


export const STREAMED = Symbol('streamed');

/** moby's httputils.BoolValue: any value but "", 0, no, false and none (any case) is true. */
export const bool = (q: URLSearchParams, k: string) => !['', '0', 'no', 'false', 'none'].includes((q.get(k) ?? '').trim().toLowerCase());

/** A Go strconv.Atoi of a query value (moby answers its error with 400); `fallback` when absent or empty. */
export function int(q: URLSearchParams, k: string, fallback: number): number {
  const v = q.get(k);
  if (v === null || v === '') return fallback;
  return atoi(v, 'strconv.Atoi');
}

function atoi(v: string, fn: string): number {
  if (!/^[+-]?\d+$/.test(v)) throw invalidParameter(`${fn}: parsing ${goQuote(v)}: invalid syntax`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw invalidParameter(`${fn}: parsing ${goQuote(v)}: value out of range`);
  return n;
}

/**
 * A Unix timestamp as moby's timetypes.ParseTimestamps reads `since`/`until` (seconds, optionally
 * `.nanoseconds`); returns seconds, or undefined when absent.
 */
export function timestamp(q: URLSearchParams, k: string): number | undefined {
  const v = q.get(k);
  if (v === null || v === '') return undefined;
  const [sec = '', frac] = v.split('.', 2);
  const s = atoi(sec, 'strconv.ParseInt');
  if (frac === undefined) return s;
  if (!/^\d+$/.test(frac)) throw invalidParameter(`strconv.ParseInt: parsing ${goQuote(frac)}: invalid syntax`);
  return Number(`${s}.${frac}`);
}

/** Go's %q of a string, near enough for messages: JSON quoting, which escapes what would break a line. */
export const goQuote = (s: string) => JSON.stringify(s.length > 256 ? `${s.slice(0, 256)}...` : s);
export function filters(q: URLSearchParams): Record<string, string[]> {
  const raw = q.get('filters');
  if (!raw) return {};
  // moby's filters.FromJSON: map[string]map[string]bool, or the older map[string][]string; null is empty
  const bad = () => invalidParameter(`invalid filter: ${raw.length > 256 ? `${raw.slice(0, 256)}...` : raw}`);
  let f: unknown;
  try {
    f = parseJsonBody(raw);
  } catch {
    throw bad();
  }
  if (f === null || f === undefined) return {};
  if (typeof f !== 'object' || Array.isArray(f)) throw bad();
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(f as Record<string, unknown>)) {
    if (v === null) out[k] = [];
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = v;
    else if (typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'boolean' || x === null)) {
      out[k] = Object.keys(v).filter((x) => (v as Record<string, boolean>)[x]);
    } else throw bad();
  }
  return out;
}

export function json(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function noContent(res: http.ServerResponse, status = 204): void {
  res.writeHead(status);
  res.end();
}

export function frame(stream: 0 | 1 | 2, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}

/** Takes over the connection as Docker does for attach/exec: 101 when the client asked to upgrade. */
export function hijack(ctx: Ctx, tty: boolean): net.Socket {
  const type = tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream';
  if (ctx.socket) {
    ctx.socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    if (ctx.head?.length) ctx.socket.unshift(ctx.head);
    return ctx.socket;
  }
  const sock = ctx.req.socket;
  ctx.res.detachSocket?.(sock);
  sock.write(`HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\n\r\n`);
  return sock;
}
