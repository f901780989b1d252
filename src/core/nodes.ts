// The cluster's hosts as `node ls` shows them. Each host keeps two keys in the cluster store:
//
//   /loom/v1/hosts/<hostId>   leased: there while the host renews its lease (its liveness)
//   /loom/v1/nodes/<hostId>   not leased: who it is (name, tunnel address, version) and when it was last
//                             seen (rewritten every TTL), so a host whose lease ran out still shows, as
//                             "down", until it is removed (`node rm`) or forgotten after FORGET_AFTER_MS
//
// The API answers in swarm's Node shape (GET /nodes), which is what the docker CLI renders for
// `docker node ls`; every host is a worker (the classic cluster has no managers).
import os from 'node:os';
import type { ClusterStore } from '../store/cluster.ts';
import { invalidParameter, LoomError, notFound } from '../util/errors.ts';

const P = '/loom/v1/';
export const NODE_KEYS = {
  node: (id: string) => `${P}nodes/${id}`,
  nodes: `${P}nodes/`,
  hosts: `${P}hosts/`,
};

/** a down host's record goes after this long without being seen */
export const FORGET_AFTER_MS = 24 * 3600 * 1000;

export interface NodeRecord {
  id: string;
  hostname: string;
  /** --cluster-advertise */
  addr: string;
  version: string;
  /** ISO times */
  joined: string;
  lastSeen: string;
  ncpu?: number;
  memory?: number;
}

export interface NodeView extends NodeRecord {
  state: 'ready' | 'down';
  revision: number;
  self: boolean;
}

/** swarm node IDs are 25 characters; a host's is its daemon id's first 25 */
export const nodeId = (hostId: string) => hostId.slice(0, 25);

export function selfRecord(hostId: string, addr: string, version: string, joined: string): NodeRecord {
  return { id: hostId, hostname: os.hostname(), addr, version, joined, lastSeen: new Date().toISOString(), ncpu: os.cpus().length, memory: os.totalmem() };
}

/** Every known host with its state; down hosts unseen for FORGET_AFTER_MS are deleted on the way. */
export async function listNodes(store: ClusterStore, selfId: string, now = Date.now()): Promise<NodeView[]> {
  const [{ kvs: nodes }, { kvs: live }] = await Promise.all([store.list(NODE_KEYS.nodes), store.list(NODE_KEYS.hosts)]);
  const alive = new Set(live.map((kv) => kv.key.slice(NODE_KEYS.hosts.length)));
  const out: NodeView[] = [];
  for (const kv of nodes) {
    const r = JSON.parse(kv.value) as NodeRecord;
    const state = alive.has(r.id) ? 'ready' : 'down';
    if (state === 'down' && now - Date.parse(r.lastSeen) > FORGET_AFTER_MS) {
      await store.txn([{ key: kv.key, modRevision: kv.modRevision }], [{ delete: kv.key }]);
      continue;
    }
    out.push({ ...r, state, revision: kv.modRevision, self: r.id === selfId });
  }
  return out.sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id));
}

/** A node by full id, id prefix or hostname, as swarm resolves `docker node rm X`. */
export function findNode(nodes: NodeView[], ref: string): NodeView {
  const exact = nodes.find((n) => nodeId(n.id) === ref || n.id === ref);
  if (exact) return exact;
  const byName = nodes.filter((n) => n.hostname === ref);
  const byPrefix = nodes.filter((n) => n.id.startsWith(ref));
  const hits = byName.length ? byName : byPrefix;
  if (hits.length > 1) throw invalidParameter(`node ${ref} is ambiguous (${hits.length} matches found)`);
  if (!hits.length) throw notFound(`node ${ref} not found`);
  return hits[0]!;
}

/** Forgets a host: refused while it is up unless forced (swarm's rule and words). */
export async function removeNode(store: ClusterStore, nodes: NodeView[], ref: string, force: boolean): Promise<void> {
  const n = findNode(nodes, ref);
  if (n.self) throw invalidParameter(`node ${nodeId(n.id)} is this daemon's own node and can't be removed`);
  if (n.state !== 'down' && !force) throw invalidParameter(`node ${nodeId(n.id)} is not down and can't be removed`);
  const ok = await store.txn([{ key: NODE_KEYS.node(n.id), modRevision: n.revision }], [{ delete: NODE_KEYS.node(n.id) }]);
  if (!ok) throw new LoomError(409, `node ${nodeId(n.id)} changed meanwhile (it came back?); try again`);
}

/** swarm's Node JSON (API 1.24+), as the docker CLI reads it. */
export function swarmNode(n: NodeView): Record<string, unknown> {
  return {
    ID: nodeId(n.id),
    Version: { Index: n.revision },
    CreatedAt: n.joined,
    UpdatedAt: n.lastSeen,
    Spec: { Labels: {}, Role: 'worker', Availability: 'active' },
    Description: {
      Hostname: n.hostname,
      Platform: { Architecture: 'x86_64', OS: 'linux' },
      Resources: { NanoCPUs: (n.ncpu ?? 0) * 1e9, MemoryBytes: n.memory ?? 0 },
      Engine: { EngineVersion: n.version, Plugins: [{ Type: 'Network', Name: 'overlay' }] },
    },
    Status: { State: n.state, Addr: n.addr, ...(n.state === 'down' ? { Message: `no lease since ${n.lastSeen}` } : {}) },
  };
}

/** GET /nodes filters swarm supports that mean something here. */
export function filterNodes(nodes: NodeView[], f: Record<string, string[]>): NodeView[] {
  for (const k of Object.keys(f)) {
    if (!['id', 'name', 'role', 'membership'].includes(k)) throw invalidParameter(`invalid filter '${k}'`);
  }
  return nodes.filter((n) => (!f.id || f.id.some((x) => n.id.startsWith(x)))
    && (!f.name || f.name.some((x) => n.hostname.includes(x)))
    && (!f.role || f.role.includes('worker'))
    && (!f.membership || f.membership.includes('accepted')));
}
