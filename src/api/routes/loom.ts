// loom's extensions of the Engine API for seeing the network: the topology (GET /loom/topology), a packet
// trace (POST /loom/trace) and the commands an operation amounts to (POST /loom/explain).
import os from 'node:os';
import type { Daemon } from '../../daemon.ts';
import { route, STREAMED } from '../router.ts';
import { buildTopology, type Topology } from '../../topology/model.ts';
import { renderTopology } from '../../topology/render.ts';
import { invalidParameter } from '../../util/errors.ts';
import { Tracer } from '../../trace/tracer.ts';
import { Explainer } from '../../explain/explain.ts';

/** The host's uplinks: its interfaces other than lo, loom's bridges and containers' veths. */
function uplinks(d: Daemon, bridges: Set<string>, veths: Set<string>) {
  return Object.entries(os.networkInterfaces())
    .filter(([name]) => name !== 'lo' && !bridges.has(name) && !veths.has(name) && !/^veth[0-9a-f]{7}$/.test(name))
    .map(([name, addrs]) => ({ name, addresses: (addrs ?? []).filter((a) => !a.address.startsWith('fe80')).map((a) => a.cidr ?? a.address) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function gatherTopology(d: Daemon): Topology {
  const networks = d.networks.list();
  const containers = d.containers.list();
  const bridges = new Set(networks.flatMap((n) => (n.bridge ? [n.bridge] : [])));
  const veths = new Set(containers.flatMap((c) => Object.values(c.endpoints).flatMap((e) => (e.hostVeth ? [e.hostVeth] : []))));
  return buildTopology({
    hostName: os.hostname(), uplinks: uplinks(d, bridges, veths), networks, containers, firewall: d.networks.firewallState(),
    ...(d.cluster ? { remoteEndpoints: (id: string) => d.cluster!.remoteEndpoints(id), advertise: d.opts.clusterAdvertise } : {}),
  });
}

const TYPES: Record<string, string> = { json: 'application/json', svg: 'image/svg+xml', dot: 'text/vnd.graphviz; charset=utf-8', text: 'text/plain; charset=utf-8' };

route('GET', '/loom/topology', (d, { query, res }) => {
  const format = query.get('format') ?? 'json';
  if (!TYPES[format]) throw invalidParameter(`invalid format ${JSON.stringify(format)}: use json, text, dot or svg`);
  const t = gatherTopology(d);
  if (format === 'json') return t;
  const body = renderTopology(t, format);
  res.writeHead(200, { 'Content-Type': TYPES[format]!, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
  return STREAMED;
});

const tracers = new WeakMap<Daemon, Tracer>();

/** A real probe from Source to Destination and what the kernel did with it (see src/trace/tracer.ts). */
route('POST', '/loom/trace', async (d, ctx) => {
  const body = (await ctx.body()) ?? {};
  if (typeof body !== 'object' || Array.isArray(body)) throw invalidParameter('invalid trace request: a JSON object is needed');
  const known = ['Source', 'Destination', 'Protocol', 'Port', 'TimeoutMs', 'IPv6'];
  const unknown = Object.keys(body).filter((k) => !known.includes(k));
  if (unknown.length) throw invalidParameter(`unknown field in trace request: ${unknown.join(', ')}`);
  let t = tracers.get(d);
  if (!t) tracers.set(d, (t = new Tracer(d)));
  return t.trace(body);
});

/** The ip/nft/sysctl commands an operation amounts to, from the current state; nothing is changed. */
route('POST', '/loom/explain', async (d, ctx) => {
  const body = (await ctx.body()) ?? {};
  if (!Array.isArray(body.Args)) throw invalidParameter('invalid explain request: {"Args": ["run", ...]} is needed');
  return new Explainer(d).explain(body.Args);
});
