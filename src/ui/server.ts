// `loom daemon --ui ADDR:PORT`: a small web page that draws the live topology, shows a container's
// interfaces, addresses, DNS names, ports and the rules that apply to it, and runs traces. Static files
// ship in src/ui/static (no CDN: these machines have no internet). Nothing listens unless --ui is given,
// and only on the address given. The page reads (topology, events) and runs traces, which only add a
// temporary trace rule; it cannot create, change or remove anything.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Daemon } from '../daemon.ts';
import { gatherTopology } from '../api/routes/loom.ts';
import { renderSvg } from '../topology/render.ts';
import { Tracer } from '../trace/tracer.ts';
import { invalidParameter, messageOf, statusOf } from '../util/errors.ts';
import { parseUiAddress } from './address.ts';

const STATIC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'static');
const FILES: Record<string, string> = { '/': 'index.html', '/index.html': 'index.html', '/app.js': 'app.js', '/style.css': 'style.css' };
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

function send(res: http.ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(body);
}

async function readJson(req: http.IncomingMessage): Promise<any> {
  let s = '';
  for await (const c of req) {
    s += c;
    if (s.length > 64 * 1024) throw invalidParameter('request body too large');
  }
  try {
    return JSON.parse(s || '{}');
  } catch {
    throw invalidParameter('invalid JSON in request body');
  }
}

export function startUi(d: Daemon, address: string): Promise<http.Server> {
  const { host, port } = parseUiAddress(address);
  const authority = new Set([`${host.includes(':') ? `[${host}]` : host}:${port}`, ...(host === '127.0.0.1' || host === '::1' ? [`localhost:${port}`] : [])]);
  let tracer: Tracer | undefined;
  const server = http.createServer((req, res) => {
    // another site's page must not drive this one through the user's browser (DNS rebinding): only
    // requests naming this very address are answered
    if (!authority.has(req.headers.host ?? '')) return send(res, 421, 'text/plain', 'wrong Host header\n');
    const url = new URL(req.url ?? '/', 'http://ui');
    const handle = async () => {
      if (req.method === 'GET' && FILES[url.pathname]) {
        const f = FILES[url.pathname]!;
        return send(res, 200, TYPES[path.extname(f)]!, fs.readFileSync(path.join(STATIC, f)));
      }
      if (req.method === 'GET' && url.pathname === '/api/topology') return send(res, 200, 'application/json', JSON.stringify(gatherTopology(d)));
      if (req.method === 'GET' && url.pathname === '/api/topology.svg') return send(res, 200, 'image/svg+xml', renderSvg(gatherTopology(d)));
      if (req.method === 'GET' && url.pathname === '/api/rules') return send(res, 200, 'application/json', JSON.stringify(d.firewall.state()));
      if (req.method === 'GET' && url.pathname === '/api/events') {
        // Server-sent events: one "change" per container or network event; the page then redraws
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
        res.write('retry: 1000\n\n');
        const off = d.events.subscribe((e) => {
          if (e.Type === 'container' || e.Type === 'network') res.write(`event: change\ndata: ${JSON.stringify({ type: e.Type, action: e.Action, id: e.Actor.ID })}\n\n`);
        });
        const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
        req.socket.on('close', () => { off(); clearInterval(ping); });
        return;
      }
      if (req.method === 'POST' && url.pathname === '/api/trace') {
        if (!(req.headers['content-type'] ?? '').startsWith('application/json')) throw invalidParameter('Content-Type must be application/json');
        const b = await readJson(req);
        tracer ??= new Tracer(d);
        const r = await tracer.trace({ Source: String(b.Source ?? ''), Destination: String(b.Destination ?? ''), ...(b.Protocol ? { Protocol: String(b.Protocol) } : {}), ...(b.Port ? { Port: Number(b.Port) } : {}), ...(b.IPv6 === true ? { IPv6: true } : {}) });
        return send(res, 200, 'application/json', JSON.stringify(r));
      }
      send(res, 404, 'application/json', JSON.stringify({ message: 'page not found' }));
    };
    handle().catch((e) => {
      if (res.headersSent) return res.end();
      send(res, statusOf(e), 'application/json', JSON.stringify({ message: messageOf(e) }));
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(invalidParameter(`--ui ${address}: ${messageOf(e)}`)));
    server.listen(port, host, () => resolve(server));
  });
}
