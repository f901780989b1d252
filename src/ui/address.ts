// The --ui flag's value, checked before the daemon starts anything.
import net from 'node:net';
import { invalidParameter } from '../util/errors.ts';

/** "127.0.0.1:7777" or "[::1]:7777" → host and port; a clear error otherwise. */
export function parseUiAddress(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s ?? '');
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !net.isIP(host!) || !(port >= 1 && port <= 65535)) throw invalidParameter(`invalid --ui address ${JSON.stringify(s)}: use IP:PORT, e.g. 127.0.0.1:7777`);
  return { host: host!, port };
}
