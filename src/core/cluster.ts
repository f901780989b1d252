// Global networks across a cluster (dockerd's --cluster-store / --cluster-advertise): what the classic,
// pre-swarm libnetwork kept in its KV store, kept in the cluster store (src/store/cluster.ts):
//
//   /loom/v1/netindex              {names, subnets, vnis} of every global network: one key, so a create or
//                                  remove is one compare-and-swap against every other host's
//   /loom/v1/networks/<id>         the network's record (what `network inspect` shows, on every host)
//   /loom/v1/eps/<netId>/<ip>      one endpoint's address claim and what peers need (MAC, the host's
//                                  tunnel address, DNS names); leased, so a host that dies takes its
//                                  endpoints along when its lease runs out. A dual-stack endpoint has two
//                                  keys (its IPv4 and its IPv6 address) holding the same record, written
//                                  and deleted together: each address is claimed cluster-wide on its own.
//   /loom/v1/hosts/<hostId>        the host, leased: its liveness
//
// Every host lists the whole prefix once and then watches it from that revision, so its view never has a
// gap: network records are mirrored into the local store (network ls/inspect work as for local networks),
// remote endpoints become the overlay driver's peers and the embedded DNS's names. An address is this
// host's only when its key was created by a transaction whose compare said it did not exist; the network
// key's revision is part of that compare, so no endpoint slips in while a `network rm` checks for them.
import os from 'node:os';
import net from 'node:net';
import type { ClusterStore, Compare, StoredKV, Watch, WatchEvent } from '../store/cluster.ts';
import type { EndpointRecord, NetworkRecord } from './types.ts';
import type { DnsNames, NameEntry } from './dnsnames.ts';
import { OPT_VXLANID, parseVxlanIds, validateOverlayOptions, VNI_END, VNI_START, type OverlayDriver } from '../drivers/overlay.ts';
import { cidrString, firstHost, nextFreePool, overlaps, parseCidr, type Cidr } from '../ipam/ipam.ts';
import { conflict, invalidParameter, LoomError, messageOf, notFound, systemError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import type { EtcdConnection } from '../store/etcd.ts';
import { listNodes, NODE_KEYS, removeNode, selfRecord, type NodeView } from './nodes.ts';
import { LOOM_VERSION } from '../api/router.ts';

const P = '/loom/v1/';
export const KEYS = {
  prefix: P,
  index: `${P}netindex`,
  network: (id: string) => `${P}networks/${id}`,
  epsOf: (netId: string) => `${P}eps/${netId}/`,
  ep: (netId: string, ip: string) => `${P}eps/${netId}/${ip}`,
  host: (id: string) => `${P}hosts/${id}`,
};

/** Docker's GlobalDefault address space: 10.0.0.0/8 in /24s (libnetwork ipamutils). */
export const GLOBAL_DEFAULT_POOL = { base: '10.0.0.0/8', size: 24 };
/** dockerd's discovery TTL is 60 s; 20 s makes a dead host's endpoints go sooner (--cluster-store-opt discovery.ttl=N) */
export const DEFAULT_TTL = 20;
const CAS_ATTEMPTS = 16;
/** how long the daemon's start waits for the cluster store */
const START_WAIT_MS = 3000;

interface NetIndex { names: Record<string, string>; subnets: Record<string, string>; vnis: Record<string, string> }

/** What the store says of one endpoint. */
export interface EndpointClaim {
  ep: string;
  network: string;
  host: string;
  /** the host's tunnel address (--cluster-advertise) */
  vtep: string;
  mac: string;
  ipv4: string;
  prefix: number;
  /** a dual-stack network's second address */
  ipv6?: string;
  prefix6?: number;
  container?: string;
  /** the container's name (PTR answers, `network rm` messages) */
  name?: string;
  /** what the embedded DNS answers for it: name, aliases, short id, hostname */
  names?: string[];
}

/** Every key of an endpoint's record: one per address. */
export function claimKeys(c: Pick<EndpointClaim, 'network' | 'ipv4' | 'ipv6'>): string[] {
  return [c.ipv4, c.ipv6].filter((a): a is string => !!a).map((a) => KEYS.ep(c.network, a));
}

/** What the cluster needs of the local controller (src/core/networks.ts). */
export interface LocalNetworks {
  list(): NetworkRecord[];
  /** the record as this host's copy of a global network (new, or changed elsewhere) */
  adoptGlobal(net: NetworkRecord): Promise<void>;
  /** the global network is gone from the cluster: this host's copy and kernel side go too */
  dropGlobal(id: string): Promise<void>;
}

/** Who programs remote endpoints into the kernel: the overlay driver. */
export type PeerSink = Pick<OverlayDriver, 'addPeer' | 'removePeer'>;

/** dockerd's message when a global-scope network is asked of a daemon without a cluster store. */
export function noClusterStoreError(cfg: { Subnet?: string; IPRange?: string } | undefined): LoomError {
  return invalidParameter(`failed to parse pool request for address space "GlobalDefault" pool "${cfg?.Subnet ?? ''}" subpool "${cfg?.IPRange ?? ''}": `
    + 'cannot find address space GlobalDefault (most likely the backing datastore is not configured); '
    + 'overlay networks need the daemon started with --cluster-store etcd://HOST:PORT and --cluster-advertise IP');
}

/**
 * The daemon's cluster flags, checked as dockerd does: --cluster-advertise without --cluster-store is
 * refused; `IP`, `IP:port` or `interface[:port]` name this host (the port, the API's in Docker, is unused).
 */
export function parseClusterFlags(store: string | undefined, advertise: string | undefined, storeOpts: string[]): { advertise: string; ttl: number; connection: EtcdConnection } | null {
  if (!store) {
    if (advertise) throw invalidParameter('invalid cluster configuration. --cluster-advertise must be accompanied by --cluster-store configuration');
    return null;
  }
  if (!advertise) throw invalidParameter('invalid cluster configuration. --cluster-store must be accompanied by --cluster-advertise (the address other hosts reach this one at)');
  let ttl = DEFAULT_TTL;
  const connection: EtcdConnection = {};
  // Docker's names for the store's TLS files (libkv), and etcd's user authentication
  const kvOpts: Record<string, keyof EtcdConnection> = {
    'kv.cacertfile': 'caFile', 'kv.certfile': 'certFile', 'kv.keyfile': 'keyFile', 'kv.username': 'username', 'kv.password': 'password',
  };
  for (const o of storeOpts) {
    const i = o.indexOf('=');
    const [k, v] = i < 0 ? [o, undefined] : [o.slice(0, i), o.slice(i + 1)];
    if (kvOpts[k]) {
      if (!v) throw invalidParameter(`invalid --cluster-store-opt ${o}: ${k} needs a value`);
      connection[kvOpts[k]] = v;
    } else if (k === 'discovery.ttl') {
      const n = Number(String(v).replace(/s$/, ''));
      if (!Number.isInteger(n) || n < 2) throw invalidParameter(`invalid --cluster-store-opt ${o}: discovery.ttl takes whole seconds, at least 2`);
      ttl = n;
    } else if (k !== 'discovery.heartbeat') {
      // heartbeat is the client's business (etcd's keepalive runs at a third of the TTL)
      throw invalidParameter(`unsupported --cluster-store-opt ${o}`);
    }
  }
  if (!!connection.certFile !== !!connection.keyFile) throw invalidParameter('invalid --cluster-store-opt: kv.certfile and kv.keyfile go together');
  if (connection.certFile && !connection.caFile) throw invalidParameter('invalid --cluster-store-opt: kv.certfile needs kv.cacertfile (TLS)');
  if (connection.password && !connection.username) throw invalidParameter('invalid --cluster-store-opt: kv.password needs kv.username');
  return { advertise: resolveAdvertise(advertise), ttl, connection };
}

function resolveAdvertise(a: string): string {
  const bracket = /^\[([0-9a-fA-F:]+)\](?::\d+)?$/.exec(a);
  if (bracket) throw invalidParameter(`discovery advertise parsing failed (${bracket[1]}: loom's overlay tunnels are IPv4 only)`);
  const host = a.includes(':') && !net.isIPv6(a) ? a.slice(0, a.lastIndexOf(':')) : a;
  if (net.isIPv4(host)) return host;
  if (net.isIPv6(host)) throw invalidParameter(`discovery advertise parsing failed (${host}: loom's overlay tunnels are IPv4 only)`);
  const v4 = os.networkInterfaces()[host]?.find((i) => i.family === 'IPv4');
  if (!v4) throw invalidParameter(`discovery advertise parsing failed (invalid --cluster-advertise configuration: ${a}: no interface with an IPv4 address of that name)`);
  return v4.address;
}

export interface ClusterOptions {
  hostId: string;
  advertise: string;
  ttl: number;
  log: Logger;
}

export class Cluster {
  readonly store: ClusterStore;
  private readonly opts: ClusterOptions;
  private readonly log: Logger;
  private local!: LocalNetworks;
  private overlay!: PeerSink;
  private dns!: DnsNames;
  /** every endpoint in the store, by key */
  private readonly eps = new Map<string, EndpointClaim>();
  /** this host's endpoints by endpoint id: the local truth, put back whenever the store lost them */
  private readonly mine = new Map<string, EndpointClaim>();
  /** names registered for this host's endpoints (netId/ip), kept for records written later */
  private readonly names = new Map<string, { container: string; name: string; names: string[] }>();
  private watch: Watch | null = null;
  private connected = false;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;
  /** watch events are applied one after the other, in revision order */
  private applying: Promise<unknown> = Promise.resolve();
  /** background writes (releases, name updates), in order */
  private writing: Promise<unknown> = Promise.resolve();
  /** endpoints running here after a restart, published once the store answers */
  private pendingReconcile: EndpointRecord[] | null = null;
  /** why the store was last out of reach ('' while it answers) */
  private unreachable = 'not joined yet';
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly joinedAt = new Date().toISOString();

  constructor(store: ClusterStore, opts: ClusterOptions) {
    this.store = store;
    this.opts = opts;
    this.log = opts.log;
  }

  attach(local: LocalNetworks, overlay: PeerSink, dns: DnsNames): void {
    this.local = local;
    this.overlay = overlay;
    this.dns = dns;
  }

  get hostId(): string {
    return this.opts.hostId;
  }

  /**
   * Joins the cluster: lease, host record, the whole state, then the watch. A store that does not answer
   * within a few seconds does not hold the daemon's start up: joining goes on (and is retried) in the
   * background, with this host's last copy of the global networks meanwhile.
   */
  async start(): Promise<void> {
    const joined = this.connect().then(() => true, (e) => {
      this.unreachable = messageOf(e);
      this.log.error({ store: this.store.url, err: messageOf(e) }, 'cluster store out of reach; global networks are this host\'s last copy until it answers');
      this.retryLater();
      return true;
    });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<boolean>((r) => { timer = setTimeout(() => r(false), START_WAIT_MS); });
    if (!(await Promise.race([joined, waited]))) this.log.warn({ store: this.store.url }, 'cluster store slow to answer; joining in the background');
    clearTimeout(timer);
  }

  private retryLater(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect().catch((e) => {
        this.unreachable = messageOf(e);
        this.log.warn({ store: this.store.url, err: messageOf(e) }, 'cluster store still out of reach');
        this.retryLater();
      });
    }, 3000);
    this.retry.unref();
  }

  private async connect(): Promise<void> {
    await this.store.grantLease(this.opts.ttl, () => this.leaseLost());
    await this.putHost();
    await this.resync();
    this.connected = true;
    this.log.info({ store: this.store.url, advertise: this.opts.advertise, networks: this.local.list().filter((n) => n.scope === 'global').length, endpoints: this.eps.size }, 'joined the cluster');
    if (this.pendingReconcile) {
      const live = this.pendingReconcile;
      this.pendingReconcile = null;
      await this.reconcile(live);
    }
    // joining again after the store was away: this host's endpoints may have gone with an expired lease
    for (const c of this.mine.values()) await this.republish(c).catch((e) => this.log.warn({ ep: c.ep, err: messageOf(e) }, 'cannot publish endpoint'));
  }

  private async putHost(): Promise<void> {
    await this.store.txn([], [
      { put: KEYS.host(this.opts.hostId), value: JSON.stringify({ advertise: this.opts.advertise, name: os.hostname() }), leased: true },
      { put: NODE_KEYS.node(this.opts.hostId), value: JSON.stringify(selfRecord(this.opts.hostId, this.opts.advertise, LOOM_VERSION, this.joinedAt)) },
    ]);
    this.unreachable = '';
    this.startHeartbeat();
  }

  /** The node record's "last seen", rewritten every TTL: what `node ls` shows for a host that went down. */
  private startHeartbeat(): void {
    if (this.heartbeat || this.closed) return;
    this.heartbeat = setInterval(() => {
      if (!this.connected) return;
      const rec = selfRecord(this.opts.hostId, this.opts.advertise, LOOM_VERSION, this.joinedAt);
      this.store.txn([], [{ put: NODE_KEYS.node(this.opts.hostId), value: JSON.stringify(rec) }])
        .then(() => { this.unreachable = ''; }, (e) => { this.unreachable = messageOf(e); });
    }, this.opts.ttl * 1000);
    this.heartbeat.unref();
  }

  /** The store's state for `info`: its hosts, or why it cannot be reached. */
  async status(): Promise<{ reachable: boolean; error: string; members: number; ready: number }> {
    try {
      const nodes = await this.nodes();
      return { reachable: true, error: '', members: nodes.length, ready: nodes.filter((n) => n.state === 'ready').length };
    } catch (e) {
      return { reachable: false, error: messageOf(e), members: 0, ready: 0 };
    }
  }

  /** The cluster's hosts (`node ls`). */
  async nodes(): Promise<NodeView[]> {
    try {
      const r = await listNodes(this.store, this.opts.hostId);
      this.unreachable = '';
      return r;
    } catch (e) {
      this.unreachable = messageOf(e);
      throw e;
    }
  }

  /** `node rm`: forgets a host that is down (or, forced, one that is not). */
  async removeNode(ref: string, force: boolean): Promise<void> {
    await removeNode(this.store, await this.nodes(), ref, force);
  }

  get advertise(): string {
    return this.opts.advertise;
  }

  /** The lease ran out (the store was away too long): every key of this host is gone; put them back. */
  private leaseLost(): void {
    if (this.closed) return;
    this.log.warn({ store: this.store.url }, 'cluster lease lost; publishing this host\'s endpoints again');
    this.connected = false;
    void (async () => {
      try {
        await this.store.grantLease(this.opts.ttl, () => this.leaseLost());
        await this.putHost();
        this.connected = true;
        for (const c of this.mine.values()) await this.republish(c);
      } catch (e) {
        this.log.error({ err: messageOf(e) }, 'cannot rejoin the cluster');
        this.retryLater();
      }
    })();
  }

  /** Lists everything and watches from there; what changed meanwhile is applied as events would be. */
  private async resync(): Promise<void> {
    await this.watch?.cancel();
    this.watch = null;
    const { kvs, revision } = await this.store.list(P);
    await this.enqueue(() => this.applySnapshot(kvs));
    this.watch = await this.store.watch(P, revision, (e) => void this.enqueue(() => this.apply(e)), (err) => {
      this.log.warn({ err: messageOf(err) }, 'cluster watch broken; listing again');
      this.resync().catch((e) => {
        this.log.error({ err: messageOf(e) }, 'cluster resync failed');
        this.connected = false;
        this.retryLater();
      });
    });
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const run = this.applying.then(fn).catch((e) => this.log.error({ err: messageOf(e) }, 'applying a cluster change failed'));
    this.applying = run;
    return run;
  }

  private async applySnapshot(kvs: StoredKV[]): Promise<void> {
    const nets = new Map<string, NetworkRecord>();
    const eps = new Map<string, EndpointClaim>();
    for (const kv of kvs) {
      const k = kv.key.slice(P.length);
      if (k.startsWith('networks/')) nets.set(k.slice('networks/'.length), parseNetwork(kv.value));
      else if (k.startsWith('eps/')) eps.set(kv.key, JSON.parse(kv.value) as EndpointClaim);
    }
    for (const n of nets.values()) await this.local.adoptGlobal(n);
    for (const n of this.local.list()) if (n.scope === 'global' && !nets.has(n.id)) await this.local.dropGlobal(n.id);
    for (const key of [...this.eps.keys()]) if (!eps.has(key)) this.unsetEndpoint(key);
    for (const [key, c] of eps) this.setEndpoint(key, c);
  }

  private async apply(e: WatchEvent): Promise<void> {
    const k = e.key.slice(P.length);
    if (k.startsWith('networks/')) {
      const id = k.slice('networks/'.length);
      if (e.type === 'put') await this.local.adoptGlobal(parseNetwork(e.value));
      else {
        for (const key of [...this.eps.keys()]) if (key.startsWith(KEYS.epsOf(id))) this.unsetEndpoint(key);
        await this.local.dropGlobal(id);
      }
    } else if (k.startsWith('eps/')) {
      if (e.type === 'put') this.setEndpoint(e.key, JSON.parse(e.value) as EndpointClaim);
      else this.unsetEndpoint(e.key);
    }
  }

  private netName(id: string): string | undefined {
    return this.local.list().find((n) => n.id === id)?.name;
  }

  private setEndpoint(key: string, c: EndpointClaim): void {
    const prev = this.eps.get(key);
    this.eps.set(key, c);
    if (c.host === this.opts.hostId) return;
    if (prev && prev.host !== this.opts.hostId && prev.container !== c.container) this.dns.remove(remoteId(prev), prev.network);
    const ip = key.slice(KEYS.epsOf(c.network).length);
    void this.overlay.addPeer(c.network, { ip, mac: c.mac, vtep: c.vtep }).catch((e) => this.log.warn({ peer: ip, err: messageOf(e) }, 'cannot program overlay peer'));
    const netName = this.netName(c.network);
    if (netName && c.names?.length) {
      // (a dual-stack endpoint's two keys register the same entry: A and AAAA)
      this.dns.add({ containerId: remoteId(c), networkId: c.network, names: c.names, ipv4: c.ipv4, ipv6: c.ipv6, ptrName: `${c.name ?? c.names[0]}.${netName}` }, netName);
    }
  }

  private unsetEndpoint(key: string): void {
    const prev = this.eps.get(key);
    if (!prev) return;
    this.eps.delete(key);
    if (prev.host === this.opts.hostId) {
      // ours, gone from the store while the endpoint lives (its lease ran out): put back by leaseLost
      return;
    }
    const ip = key.slice(KEYS.epsOf(prev.network).length);
    void this.overlay.removePeer(prev.network, ip).catch((e) => this.log.warn({ peer: ip, err: messageOf(e) }, 'cannot remove overlay peer'));
    // its names go with its last key
    if (![...this.eps.values()].some((o) => o.ep === prev.ep && o.network === prev.network)) this.dns.remove(remoteId(prev), prev.network);
  }

  private requireConnected(what: string): void {
    if (this.connected) return;
    const why = this.unreachable.replace(/^cluster store \S+ is unreachable: /, '') || 'not joined yet';
    throw new LoomError(503, `cluster store ${this.store.url} is unreachable: ${why} (cannot ${what})`);
  }

  // ------------------------------------------------------------------ networks

  /**
   * Writes a new global network (its record and its entries in the index) in one transaction: a name,
   * subnet or VNI another host took meanwhile makes the compare fail, and the checks run again. Picks the
   * subnet (Docker's GlobalDefault pool, avoiding `localUsed`) when none is given, and the VNI.
   */
  async createNetwork(n: NetworkRecord, localUsed: Cidr[]): Promise<void> {
    this.requireConnected(`create network ${n.name}`);
    if (n.driver === 'overlay') validateOverlayOptions(n);
    // the IPv4 subnet comes from Docker's GlobalDefault pool when none is given (also next to an IPv6 one)
    const given = n.ipam.config;
    const auto = !given.some((c) => !c.Subnet.includes(':'));
    const wanted = parseVxlanIds(n.options[OPT_VXLANID]);
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const cur = await this.store.get(KEYS.index);
      const idx: NetIndex = cur ? JSON.parse(cur.value) : { names: {}, subnets: {}, vnis: {} };
      if (idx.names[n.name]) throw conflict(`network with name ${n.name} already exists`);
      const taken = Object.keys(idx.subnets).map(parseCidr);
      for (const c of given) {
        if (taken.some((t) => overlaps(t, parseCidr(c.Subnet)))) throw new LoomError(403, 'invalid pool request: Pool overlaps with other one on this address space');
      }
      if (auto) {
        const pick = nextFreePool([GLOBAL_DEFAULT_POOL], [...taken, ...localUsed]);
        if (!pick) throw new LoomError(403, 'all predefined address pools have been fully subnetted');
        n.ipam.config = [{ Subnet: cidrString(pick), Gateway: firstHost(pick) }, ...given];
        n.autoSubnets = [cidrString(pick)];
      }
      let vni = wanted[0];
      if (vni !== undefined) {
        if (idx.vnis[vni]) throw new LoomError(403, `failed to reserve vxlan id ${vni}: requested bit is already allocated`);
      } else if (n.driver === 'overlay' || n.driver === 'openvswitch') {
        for (let v = VNI_START; v <= VNI_END; v++) if (!idx.vnis[v]) { vni = v; break; }
        if (vni === undefined) throw systemError('failed to allocate vxlan id: no bit available');
      }
      if (vni !== undefined) n.options[OPT_VXLANID] = String(vni);
      const next: NetIndex = {
        names: { ...idx.names, [n.name]: n.id },
        subnets: { ...idx.subnets, ...Object.fromEntries(n.ipam.config.map((c) => [c.Subnet, n.id])) },
        vnis: vni !== undefined ? { ...idx.vnis, [vni]: n.id } : idx.vnis,
      };
      const ok = await this.store.txn(
        [cur ? { key: KEYS.index, modRevision: cur.modRevision } : { key: KEYS.index, exists: false }, { key: KEYS.network(n.id), exists: false }],
        [{ put: KEYS.index, value: JSON.stringify(next) }, { put: KEYS.network(n.id), value: JSON.stringify(n) }],
      );
      if (ok) return;
    }
    throw systemError(`create network ${n.name}: the cluster store kept changing; try again`);
  }

  /**
   * Removes a global network from the cluster. Refused (403, Docker's message) while any host has an
   * endpoint on it: the record is marked first, which fails every claim that starts after the mark, and
   * only then are the endpoints counted.
   */
  async removeNetwork(n: NetworkRecord): Promise<void> {
    this.requireConnected(`remove network ${n.name}`);
    const key = KEYS.network(n.id);
    let rec: NetworkRecord | null = null;
    for (let i = 0; i < CAS_ATTEMPTS && !rec; i++) {
      const cur = await this.store.get(key);
      if (!cur) return this.dropFromIndex(n);
      const r = JSON.parse(cur.value) as NetworkRecord & { deleting?: boolean };
      if (await this.store.txn([{ key, modRevision: cur.modRevision }], [{ put: key, value: JSON.stringify({ ...r, deleting: true }) }])) rec = r;
    }
    if (!rec) throw systemError(`remove network ${n.name}: the cluster store kept changing; try again`);
    const { kvs } = await this.store.list(KEYS.epsOf(n.id));
    if (kvs.length) {
      const cur = await this.store.get(key);
      if (cur) await this.store.txn([{ key, modRevision: cur.modRevision }], [{ put: key, value: JSON.stringify({ ...rec, deleting: undefined }) }]);
      const byEp = new Map(kvs.map((kv) => JSON.parse(kv.value) as EndpointClaim).map((c) => [c.ep, c]));
      const eps = [...byEp.values()].sort((a, b) => (a.name ?? '').localeCompare(b.name ?? ''));
      throw new LoomError(403, `error while removing network: network ${n.name} has active endpoints (${eps.map((e) => `name:"${e.name ?? ''}" id:"${e.ep.slice(0, 12)}"`).join(', ')})`);
    }
    await this.dropFromIndex(n);
  }

  private async dropFromIndex(n: NetworkRecord): Promise<void> {
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const cur = await this.store.get(KEYS.index);
      const idx: NetIndex = cur ? JSON.parse(cur.value) : { names: {}, subnets: {}, vnis: {} };
      const keep = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).filter(([, id]) => id !== n.id));
      const next: NetIndex = { names: keep(idx.names), subnets: keep(idx.subnets), vnis: keep(idx.vnis) };
      const ok = await this.store.txn(
        [cur ? { key: KEYS.index, modRevision: cur.modRevision } : { key: KEYS.index, exists: false }],
        [{ put: KEYS.index, value: JSON.stringify(next) }, { delete: KEYS.network(n.id) }, { deletePrefix: KEYS.epsOf(n.id) }],
      );
      if (ok) return;
    }
    throw systemError(`remove network ${n.name}: the cluster store kept changing; try again`);
  }

  // ------------------------------------------------------------------ endpoints

  /** Whether an address of a global network is claimed by any host (as this host last heard). */
  isTaken(netId: string, ip: string): boolean {
    return this.eps.has(KEYS.ep(netId, ip));
  }

  /**
   * Claims the endpoint's address cluster-wide: creates its key if, and only if, nobody has it and the
   * network is not being removed. False: another host has that address (the caller picks another).
   */
  async claim(n: NetworkRecord, ep: EndpointRecord): Promise<boolean> {
    this.requireConnected(`attach to network ${n.name}`);
    if (!ep.ipv4) throw invalidParameter(`network ${n.name}: overlay endpoints need an IPv4 address`);
    const c = this.claimOf(n.id, ep);
    const keys = claimKeys(c);
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const cur = await this.store.get(KEYS.network(n.id));
      if (!cur) throw notFound(`network ${n.name} not found`);
      if ((JSON.parse(cur.value) as { deleting?: boolean }).deleting) throw conflict(`network ${n.name} is being removed`);
      const ok = await this.store.txn(
        [{ key: KEYS.network(n.id), modRevision: cur.modRevision }, ...keys.map((key) => ({ key, exists: false as const }))],
        keys.map((key) => ({ put: key, value: JSON.stringify(c), leased: true })),
      );
      if (ok) {
        this.mine.set(ep.id, c);
        for (const key of keys) this.eps.set(key, c);
        return true;
      }
      let held = false;
      for (const key of keys) {
        const holder = await this.store.get(key);
        if (!holder) continue;
        held = true;
        this.log.debug({ network: n.name, address: key.slice(KEYS.epsOf(n.id).length) }, 'address claimed by another host meanwhile; picking the next');
        this.eps.set(key, JSON.parse(holder.value) as EndpointClaim);
      }
      if (held) return false;
      // the network's record changed under us (a refused rm, another host's update): look again
    }
    throw systemError(`attach to network ${n.name}: the cluster store kept changing; try again`);
  }

  /** Whether this host holds the endpoint's addresses (claimed and not released). */
  holds(epId: string): boolean {
    return this.mine.has(epId);
  }

  /** This host's record of an endpoint (before its names are known: those come with updateNames). */
  private claimOf(netId: string, ep: EndpointRecord): EndpointClaim {
    return {
      ep: ep.id, network: netId, host: this.opts.hostId, vtep: this.opts.advertise, mac: ep.mac, ipv4: ep.ipv4!, prefix: ep.prefix4 ?? 24,
      ...(ep.ipv6 ? { ipv6: ep.ipv6, prefix6: ep.prefix6 ?? 64 } : {}),
      ...this.names.get(`${netId}/${ep.ipv4}`),
    };
  }

  /** The endpoint went: its keys go (in the background; a crash before it is repaired by reconcile). */
  release(ep: EndpointRecord): void {
    const c = this.mine.get(ep.id);
    if (!c) return;
    this.mine.delete(ep.id);
    this.names.delete(`${c.network}/${c.ipv4}`);
    for (const key of claimKeys(c)) this.background(() => this.deleteIfOurs(key, c.ep));
  }

  /** Deletes a key only while it is still this endpoint's (after a lost lease another host may hold it). */
  private async deleteIfOurs(key: string, epId: string): Promise<void> {
    const cur = await this.store.get(key);
    if (!cur || (JSON.parse(cur.value) as EndpointClaim).ep !== epId) return;
    await this.store.txn([{ key, modRevision: cur.modRevision }], [{ delete: key }]);
  }

  private background(fn: () => Promise<void>): void {
    this.writing = this.writing.then(fn).catch((e) => this.log.warn({ err: messageOf(e) }, 'cluster store write failed'));
  }

  /** Waits for the background writes (tests, shutdown). */
  async flush(): Promise<void> {
    await this.writing;
    await this.applying;
  }

  /**
   * The embedded DNS registered names for a container's endpoint (DnsNames.onAdd): this host's endpoints
   * on global networks carry them in their record, so other hosts' containers resolve them too.
   */
  updateNames(e: NameEntry, netName: string): void {
    if (!e.ipv4) return;
    const k = `${e.networkId}/${e.ipv4}`;
    const c = [...this.mine.values()].find((m) => m.network === e.networkId && m.ipv4 === e.ipv4);
    const suffix = `.${netName}`;
    const v = { container: e.containerId, name: e.ptrName.endsWith(suffix) ? e.ptrName.slice(0, -suffix.length) : e.ptrName, names: e.names };
    if (!c && !this.local.list().some((n) => n.id === e.networkId && n.scope === 'global')) return;
    this.names.set(k, v);
    if (!c || (c.container === v.container && c.name === v.name && JSON.stringify(c.names) === JSON.stringify(v.names))) return;
    Object.assign(c, v);
    this.background(() => this.republish(c));
  }

  /** Writes this host's record of an endpoint again (with the current lease), unless another host holds an address of it. */
  private async republish(c: EndpointClaim): Promise<void> {
    const keys = claimKeys(c);
    const compares: Compare[] = [{ key: KEYS.network(c.network), exists: true }];
    for (const key of keys) {
      const cur = await this.store.get(key);
      if (cur && (JSON.parse(cur.value) as EndpointClaim).ep !== c.ep) {
        this.log.error({ address: key.slice(KEYS.epsOf(c.network).length), network: c.network }, 'address of a running endpoint was claimed by another host while this one was away');
        return;
      }
      compares.push(cur ? { key, modRevision: cur.modRevision } : { key, exists: false });
    }
    const ok = await this.store.txn(compares, keys.map((key) => ({ put: key, value: JSON.stringify(c), leased: true })));
    if (ok) for (const key of keys) this.eps.set(key, c);
  }

  /**
   * After a restart, with the containers restored: this host's endpoints on global networks are written
   * again under the new lease (the old one is no longer renewed), and records of endpoints that no longer
   * exist here go.
   */
  async reconcile(live: EndpointRecord[]): Promise<void> {
    if (!this.connected) {
      this.pendingReconcile = live;
      return;
    }
    const globalIds = new Set(this.local.list().filter((n) => n.scope === 'global').map((n) => n.id));
    const liveIds = new Set<string>();
    for (const ep of live) {
      if (!globalIds.has(ep.networkId) || !ep.ipv4) continue;
      liveIds.add(ep.id);
      const c: EndpointClaim = this.mine.get(ep.id) ?? this.claimOf(ep.networkId, ep);
      c.vtep = this.opts.advertise;
      this.mine.set(ep.id, c);
      await this.republish(c).catch((e) => this.log.warn({ ep: ep.id, err: messageOf(e) }, 'cannot publish endpoint'));
    }
    for (const [key, c] of [...this.eps]) {
      if (c.host === this.opts.hostId && !liveIds.has(c.ep)) {
        this.mine.delete(c.ep);
        await this.deleteIfOurs(key, c.ep).catch((e) => this.log.warn({ key, err: messageOf(e) }, 'cannot delete a stale endpoint record'));
      }
    }
  }

  /** Endpoints of a network on other hosts (inspect, tests): one each, also when dual-stack. */
  remoteEndpoints(netId: string): EndpointClaim[] {
    return [...new Map([...this.eps.values()].filter((c) => c.network === netId && c.host !== this.opts.hostId).map((c) => [c.ep, c])).values()];
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.flush().catch(() => {});
    await this.watch?.cancel();
    await this.store.close();
  }
}

/** A remote endpoint's key in the embedded DNS: its container id (unique across hosts), else its endpoint id. */
const remoteId = (c: EndpointClaim) => c.container ?? `ep:${c.ep}`;

function parseNetwork(v: string): NetworkRecord {
  const r = JSON.parse(v) as NetworkRecord & { deleting?: boolean };
  delete r.deleting;
  delete r.lastAllocated;
  return r;
}
